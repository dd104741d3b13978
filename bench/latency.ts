// Benchmark: the latency each proxy adds at an equal, fixed request rate (open loop), beside a second bare proxy as a control.
// Run: npm run bench:latency [-- --rate=N] [--connections=256] [--rounds=12] [--seconds=2]
//
// The load test drives every proxy as fast as it answers (autocannon, closed loop): at 256
// connections every connection has a request in flight, so a request's latency is its wait behind
// the other 255 and follows the proxy's rate (Little's law). Here every proxy gets the same offered
// rate, by default a third of what the bare proxy answered flat out in this run, with requests
// evenly spaced and each timed from when it fell due (bench/paced.ts): the latency is what the proxy
// adds at a load it can carry. (At half, a slow spell of the host, when every process here needs
// 1.5-1.8x the CPU, brought the proxies close to saturation again.) A second copy of the bare proxy runs in the same rounds: the differences
// between the two copies are the host's, and show how far apart identical proxies come out here.
import type { ChildProcess } from 'node:child_process'
import { type BenchDatabase, startBenchDatabase } from './database.js'
import { makeUsers } from './fixtures.js'
import {
  bearerHeaders,
  cpuSeconds,
  drive,
  median,
  PATH,
  quantile,
  spawnBareProxy,
  spawnGateway,
  spawnReporting,
  stop,
  type Target,
  warmUp,
} from './load.js'
import { paced } from './paced.js'
import { formatRate, renderTable, row, writeResults } from './report.js'

/** The offered rate by default: the bare proxy's flat-out rate in this run divided by this. */
const OFFERED_SHARE = 3

interface Args {
  readonly rate: number | null
  readonly connections: number
  readonly rounds: number
  readonly seconds: number
}

function parseArgs(argv: readonly string[]): Args {
  let rate: number | null = null
  let connections = 256
  let rounds = 12
  let seconds = 2
  for (const arg of argv) {
    const [name, value] = arg.split('=')
    const n = Number(value)
    if (name === '--rate' && n > 0) rate = n
    else if (name === '--connections' && n > 0) connections = n
    else if (name === '--rounds' && n > 0) rounds = n
    else if (name === '--seconds' && n > 0) seconds = n
    else throw new Error(`unknown argument ${arg} (use --rate=N, --connections=N, --rounds=N, --seconds=N)`)
  }
  return { rate, connections, rounds, seconds }
}

/** One target's drive in one round. */
interface Drive {
  readonly latencies: Float64Array
  readonly failures: number
  readonly cpuUs: number
}

function pooled(drives: readonly Drive[]): Float64Array {
  const all = new Float64Array(drives.reduce((n, d) => n + d.latencies.length, 0))
  let at = 0
  for (const d of drives) {
    all.set(d.latencies, at)
    at += d.latencies.length
  }
  return all.sort()
}

const ms = (x: number): string => `${x.toFixed(2)} ms`
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)} ms`

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const log = (text: string) => process.stderr.write(`  latency: ${text}\n`)
  const users = makeUsers(100)
  const headers = bearerHeaders(users)
  const requests = headers.map((h) =>
    Buffer.from(
      `GET ${PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\n` +
        `authorization: ${h['authorization']}\r\naccept: ${h['accept']}\r\n\r\n`,
      'latin1',
    ),
  )
  const children: ChildProcess[] = []
  let db: BenchDatabase | null = null
  try {
    log('starting PostgreSQL')
    db = await startBenchDatabase()
    await db.addUsers(users)
    const upstream = await spawnReporting('upstream', 'dist/bench/servers/upstream.js', {})
    children.push(upstream.child)
    const bare = await spawnBareProxy('bare undici proxy', upstream.port)
    const targets: Target[] = [
      bare,
      await spawnBareProxy('bare undici proxy, second copy (control)', upstream.port),
      await spawnGateway('gateway, claims off', upstream.port, null),
      await spawnGateway('gateway, claims on', upstream.port, db.url),
    ]
    for (const t of targets) children.push(t.child)

    await warmUp(targets, args.connections, headers)
    let rate = args.rate
    if (rate === null) {
      const flatOut = await drive(bare, args.connections, args.seconds, headers)
      rate = Math.max(100, Math.round(flatOut.rps / OFFERED_SHARE / 100) * 100)
      log(`the bare proxy flat out: ${formatRate(flatOut.rps)}; offered rate: ${formatRate(rate)}`)
    }

    // Each proxy once at the offered rate before the rounds: the first paced drive also opens its
    // connections to the upstream (those of the last flat-out drive were cut with its requests).
    for (const t of targets) {
      await paced({ port: t.port, rate, seconds: 1, connections: args.connections, requests })
    }

    const drives = new Map<Target, Drive[]>(targets.map((t) => [t, []]))
    for (let r = 0; r < args.rounds; r++) {
      // Every target in every position: rotated each round, reversed every other pass.
      const k = r % targets.length
      const order = [...targets.slice(k), ...targets.slice(0, k)]
      if (Math.floor(r / targets.length) % 2 === 1) order.reverse()
      for (const t of order) {
        const pid = t.child.pid!
        const cpuBefore = cpuSeconds(pid)
        const result = await paced({
          port: t.port,
          rate,
          seconds: args.seconds,
          connections: args.connections,
          requests,
        })
        const cpuUs = ((cpuSeconds(pid) - cpuBefore) / Math.max(1, result.latencies.length)) * 1e6
        drives.get(t)!.push({ ...result, cpuUs })
        log(
          `round ${r + 1}/${args.rounds}: ${t.name}: p50 ${ms(quantile(result.latencies, 0.5))}, ` +
            `p99 ${ms(quantile(result.latencies, 0.99))}, ${cpuUs.toFixed(0)} us CPU/req` +
            (result.failures > 0 ? `, ${result.failures} failed` : ''),
        )
      }
    }

    const bareDrives = drives.get(bare)!
    const rows = targets.map((t) => {
      const own = drives.get(t)!
      const all = pooled(own)
      const failures = own.reduce((n, d) => n + d.failures, 0)
      const metrics: Record<string, number> = {
        p50Ms: quantile(all, 0.5),
        p90Ms: quantile(all, 0.9),
        p99Ms: quantile(all, 0.99),
        p999Ms: quantile(all, 0.999),
        cpuUsPerReq: Math.round(median(own.map((d) => d.cpuUs)) * 10) / 10,
        rate,
        failures,
      }
      const figure =
        `p50 ${ms(metrics['p50Ms']!)}, p90 ${ms(metrics['p90Ms']!)}, p99 ${ms(metrics['p99Ms']!)}, ` +
        `p99.9 ${ms(metrics['p999Ms']!)}, ${metrics['cpuUsPerReq']!.toFixed(0)} us CPU/req`
      if (t === bare) return row('latency', t.name, figure, metrics, { pass: failures === 0 ? null : false })
      // Paired with the bare proxy's drive in the same round.
      const delta = (q: number) =>
        median(own.map((d, i) => quantile(d.latencies, q) - quantile(bareDrives[i]!.latencies, q)))
      const cpu = median(own.map((d, i) => d.cpuUs / bareDrives[i]!.cpuUs))
      metrics['p50DeltaMs'] = delta(0.5)
      metrics['p99DeltaMs'] = delta(0.99)
      metrics['cpuRatio'] = cpu
      return row('latency', t.name, figure, metrics, {
        versus:
          `p50 ${signed(metrics['p50DeltaMs'])}, p99 ${signed(metrics['p99DeltaMs'])}, ` +
          `${cpu.toFixed(2)}x CPU (medians of ${own.length} rounds against the bare proxy)`,
        pass: failures === 0 ? null : false,
      })
    })
    process.stdout.write(
      `\nLatency at ${formatRate(rate)} offered (open loop, up to ${args.connections} connections, ` +
        `${args.rounds} rounds of ${args.seconds} s, ${process.version})\n\n${renderTable(rows, null)}\n`,
    )
    writeResults('latest-latency.json', rows, false)
    if (rows.some((r) => r.pass === false)) process.exitCode = 1
  } finally {
    await Promise.all(children.map(stop))
    await db?.close()
  }
}

await main()
