// Benchmarks, A/B: two gateway builds (and the bare proxy) in alternating short rounds; medians of CPU per request.
// Run: node dist/bench/ab.js --a=/abs/A/dist/src/main.js [--b=dist/src/main.js] [--rounds=8] [--seconds=3]
//      [--connections=32]. Builds are compared on the same machine load: each round runs A, B and the
// bare proxy back to back (the order rotates), so a busy neighbour shifts both sides alike.
import type { ChildProcess } from 'node:child_process'
import { makeUsers } from './fixtures.js'
import {
  bearerHeaders,
  drive,
  median,
  spawnBareProxy,
  spawnGateway,
  spawnReporting,
  stop,
  type Target,
  warmUp,
} from './load.js'

/** Every order of A, B and bare: over a multiple of 6 rounds each runs equally often first, second and last. */
const PERMUTATIONS = [
  [0, 1, 2],
  [1, 2, 0],
  [2, 0, 1],
  [1, 0, 2],
  [0, 2, 1],
  [2, 1, 0],
] as const

function option(name: string, fallback: string): string {
  const prefix = `--${name}=`
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length) ?? fallback
}

async function main(): Promise<void> {
  const a = option('a', '')
  if (a === '') throw new Error('--a=/abs/path/dist/src/main.js is required')
  const b = option('b', 'dist/src/main.js')
  const rounds = Number(option('rounds', '12'))
  const seconds = Number(option('seconds', '3'))
  const connections = Number(option('connections', '32'))
  const headers = bearerHeaders(makeUsers(100))
  const children: ChildProcess[] = []
  try {
    const upstream = await spawnReporting('upstream', 'dist/bench/servers/upstream.js', {})
    children.push(upstream.child)
    const targets: Target[] = [
      await spawnGateway('A', upstream.port, null, { main: a }),
      await spawnGateway('B', upstream.port, null, { main: b }),
      // Under the gateway's Node flags, as in the load benchmark's ratios.
      await spawnBareProxy('bare', upstream.port),
    ]
    for (const t of targets) children.push(t.child)
    await warmUp(targets, connections, headers)
    const cpu = new Map<string, number[]>(targets.map((t) => [t.name, []]))
    const rps = new Map<string, number[]>(targets.map((t) => [t.name, []]))
    const p99 = new Map<string, number[]>(targets.map((t) => [t.name, []]))
    const ratios: number[] = []
    for (let r = 0; r < rounds; r++) {
      const order = PERMUTATIONS[r % PERMUTATIONS.length]!.map((i) => targets[i]!)
      const round = new Map<string, number>()
      const roundP99 = new Map<string, number>()
      for (const t of order) {
        const driven = await drive(t, connections, seconds, headers)
        const us = driven.cpuUs
        round.set(t.name, us)
        cpu.get(t.name)!.push(us)
        rps.get(t.name)!.push(driven.rps)
        p99.get(t.name)!.push(driven.p99)
        roundP99.set(t.name, driven.p99)
      }
      ratios.push(round.get('B')! / round.get('A')!)
      process.stderr.write(
        `round ${r + 1}/${rounds}: ${[...round].map(([n, us]) => `${n} ${us.toFixed(1)} us/req p99 ${roundP99.get(n)} ms`).join(', ')}\n`,
      )
    }
    for (const t of targets) {
      process.stdout.write(
        `${t.name}: median ${median(cpu.get(t.name)!).toFixed(1)} us CPU/req, ` +
          `${Math.round(median(rps.get(t.name)!))} req/s, p99 ${median(p99.get(t.name)!)} ms ` +
          `(${connections} connections, ${rounds} x ${seconds} s)\n`,
      )
    }
    process.stdout.write(`B/A CPU per request, median of rounds: ${median(ratios).toFixed(3)}\n`)
  } finally {
    await Promise.all(children.map(stop))
  }
}

await main()
