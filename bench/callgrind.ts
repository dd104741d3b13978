// Benchmarks, counted: reading callgrind's output (valgrind's callgrind format, version 1).

/** Callgrind's total of the event counted first (instructions, `Ir`) in one dump. */
export function instructions(dump: string): number {
  const match = /^(?:summary|totals):\s+(\d+)/m.exec(dump)
  if (match === null) throw new Error('no summary or totals line in the callgrind dump')
  return Number(match[1])
}

/**
 * The latest dump of the main thread: with --separate-threads=yes, callgrind writes
 * `<base>.<dump number>-<thread number>`, the main thread being 01.
 */
export function latestMainThreadDump(files: readonly string[], base: string): string | null {
  let latest: string | null = null
  let highest = 0
  for (const file of files) {
    const match = /^(.*)\.(\d+)-01$/.exec(file)
    if (match === null || match[1] !== base) continue
    const n = Number(match[2])
    if (n > highest) {
      highest = n
      latest = file
    }
  }
  return latest
}
