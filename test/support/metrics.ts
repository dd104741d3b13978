// Reading Prometheus text exposition (the admin server's /metrics) in tests and benchmarks.

/** Sum of a metric's samples (all label sets, or those whose label text contains `labels`). */
export function sumSamples(exposition: string, name: string, labels?: string): number {
  let sum = 0
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (rest[0] !== '{' && rest[0] !== ' ') continue
    if (labels !== undefined && !rest.includes(labels)) continue
    sum += Number(rest.slice(rest.lastIndexOf(' ') + 1))
  }
  return sum
}
