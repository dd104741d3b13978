// Benchmarks, counted: the instructions the gateway's main thread executes per proxied request, and
// the bare proxy's, under valgrind's callgrind. Unlike CPU time, the count does not move with the
// host, so it shows what the gateway's code costs when the timed load ratios are noisy.
// Run: npm run bench:count [-- --warm-up=25000 --requests=10000 --connections=32 --only=bare,off,on --keep];
// under the image's Node 24: npm run bench:count:node24. BENCH_GATEWAY_COMPARE (another build) as in
// load.ts. About 3.5 minutes per target.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { sumSamples } from '../test/support/metrics.js'
import { instructions, latestMainThreadDump } from './callgrind.js'
import { type BenchDatabase, startBenchDatabase } from './database.js'
import { makeUsers } from './fixtures.js'
import {
  bearerHeaders,
  get,
  PATH,
  rotatingRequests,
  spawnBareProxy,
  spawnGateway,
  spawnReporting,
  stop,
  type Target,
} from './load.js'
import { type Row, renderTable, row, writeResults } from './report.js'

interface Args {
  /** Requests before counting: V8 is still compiling hot code after 5,000 on Node 24. */
  readonly warmUp: number
  readonly requests: number
  readonly connections: number
  /** Which targets to count, by callgrind file name (bare, off, on, compare). */
  readonly only: ReadonlySet<string> | null
  /** Keep callgrind's dumps (for callgrind_annotate) instead of deleting them. */
  readonly keep: boolean
}

function parseArgs(argv: readonly string[]): Args {
  const args: { -readonly [K in keyof Args]: Args[K] } = {
    warmUp: 25_000,
    requests: 10_000,
    connections: 32,
    only: null,
    keep: false,
  }
  for (const arg of argv) {
    if (arg === '--keep') {
      args.keep = true
      continue
    }
    if (arg.startsWith('--only=')) {
      args.only = new Set(arg.slice(7).split(','))
      continue
    }
    const match = /^--(warm-up|requests|connections)=(\d+)$/.exec(arg)
    if (match === null)
      throw new Error(
        `unknown argument ${arg} (use --warm-up=N, --requests=N, --connections=N, --only=bare,off,on, --keep)`,
      )
    const value = Number(match[2])
    if (match[1] === 'warm-up') args.warmUp = value
    else if (match[1] === 'requests') args.requests = value
    else args.connections = value
  }
  return args
}

/** valgrind on PATH, installed from the distribution's packages if missing and allowed. */
function ensureValgrind(): string | null {
  const probe = () => spawnSync('valgrind', ['--version'], { encoding: 'utf8' })
  if (probe().status === 0) return null
  if (process.getuid?.() !== 0) return 'valgrind is not installed (install it, e.g. apt-get install valgrind)'
  process.stderr.write('installing valgrind (apt-get)\n')
  for (const command of [['update'], ['install', '-y', '--no-install-recommends', 'valgrind']]) {
    const done = spawnSync('apt-get', command, { stdio: ['ignore', 'ignore', 'inherit'] })
    if (done.status !== 0) return `apt-get ${command[0]} failed; install valgrind to count instructions`
  }
  return probe().status === 0 ? null : 'valgrind did not install'
}

/**
 * What a gateway did off its cached path: under callgrind it runs ~50 times slower, so anything
 * driven by time (the claims TTL, the listener's heartbeat, the access log's flush timer) happens
 * per request ~50 times as often as at full speed; these counters show whether it did.
 */
async function offCachedPath(target: Target): Promise<Record<string, number>> {
  if (target.adminPort === undefined) return {}
  const text = (await get(target.adminPort, '/metrics')).body
  return {
    claimsLookups: sumSamples(text, 'gateway_claims_lookups_total'),
    tokenCacheMisses: sumSamples(text, 'gateway_jwt_cache_total', 'event="miss"'),
  }
}

/** Callgrind control (callgrind_control(1)): `-z` zeroes the counters, `-d` dumps them. */
function control(target: Target, flag: '-z' | '-d'): void {
  const done = spawnSync('callgrind_control', [flag, String(target.child.pid)], { encoding: 'utf8' })
  if (done.status !== 0) throw new Error(`callgrind_control ${flag} failed: ${done.stderr}`)
}

async function load(
  target: Target,
  amount: number,
  connections: number,
  headers: readonly Record<string, string>[],
): Promise<void> {
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}`,
    connections,
    amount,
    // Under callgrind at 256 connections some requests of the claims-on gateway's warm-up waited
    // more than 60 s (its main thread runs ~50 times slower).
    timeout: 600,
    requests: rotatingRequests(headers),
  })
  const failures = result.errors + result.timeouts + result.non2xx
  if (failures > 0 || result.requests.total < amount) {
    const statuses = Object.entries(result.statusCodeStats)
      .map(([code, { count }]) => `${count} x ${code}`)
      .join(', ')
    throw new Error(
      `${target.name}: ${failures} failed of ${result.requests.total} requests ` +
        `(${result.errors} errors, ${result.timeouts} timeouts; statuses ${statuses})`,
    )
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const missing = ensureValgrind()
  if (missing !== null) {
    process.stdout.write(`Skipping the instruction counts: ${missing}\n`)
    process.exitCode = 1
    return
  }
  const started = performance.now()
  const users = makeUsers(100)
  const headers = bearerHeaders(users)
  const dir = mkdtempSync(join(tmpdir(), 'gateway-count-'))
  const children: Target[] = []
  let db: BenchDatabase | null = null
  /** Instructions per request, and what the gateway did off its cached path during the count. */
  const counted = new Map<string, { perRequest: number; during: Record<string, number> }>()
  try {
    process.stderr.write('starting PostgreSQL\n')
    db = await startBenchDatabase()
    await db.addUsers(users)
    const upstream = await spawnReporting('upstream', 'dist/bench/servers/upstream.js', {})
    children.push(upstream)
    const expected = await get(upstream.port, PATH)
    // GC work counts on the main thread; --dump-instr=no keeps the dumps small.
    const nodeArgs = ['--single-threaded-gc']
    const wrapper = (name: string) => [
      'valgrind',
      '--tool=callgrind',
      `--callgrind-out-file=${join(dir, name)}`,
      '--separate-threads=yes',
      '--dump-instr=no',
    ]
    const compare = process.env['BENCH_GATEWAY_COMPARE']
    // [name, callgrind's output file, start]
    const launches: [string, string, () => Promise<Target>][] = [
      [
        'bare undici proxy',
        'bare',
        () => spawnBareProxy('bare undici proxy', upstream.port, nodeArgs, wrapper('bare')),
      ],
      [
        'gateway, claims off',
        'off',
        () => spawnGateway('gateway, claims off', upstream.port, null, { nodeArgs, wrapper: wrapper('off') }),
      ],
      [
        'gateway, claims on',
        'on',
        () =>
          spawnGateway('gateway, claims on', upstream.port, db!.url, {
            nodeArgs,
            wrapper: wrapper('on'),
            // The first lookups run ~50 times slower too: the default 2 s answered some with 503.
            // At ~50 times slower the 60 s TTL would also fall inside the count (a refresh lookup per
            // user): the count is of the cached path, as at full speed, where refreshes are rare.
            env: { GATEWAY_DB_LOOKUP_TIMEOUT_MS: '60000', GATEWAY_CLAIMS_TTL_SECONDS: '3600' },
          }),
      ],
    ]
    if (compare !== undefined && compare !== '') {
      launches.push([
        'gateway compare, claims off',
        'compare',
        () =>
          spawnGateway('gateway compare, claims off', upstream.port, null, {
            main: compare,
            nodeArgs,
            wrapper: wrapper('compare'),
          }),
      ])
    }
    // One target at a time: under callgrind each runs ~50 times slower and on one core.
    for (const [name, file, launch] of launches) {
      if (args.only !== null && !args.only.has(file)) continue
      const began = performance.now()
      process.stderr.write(`  count: ${name}: starting under callgrind\n`)
      const target = await launch()
      children.push(target)
      for (const h of headers) {
        const got = await get(target.port, PATH, h)
        if (got.status !== 200 || got.body !== expected.body) {
          throw new Error(`${name} answered ${got.status} ${got.body.slice(0, 200)}`)
        }
      }
      await load(target, args.warmUp, args.connections, headers)
      const before = await offCachedPath(target)
      control(target, '-z')
      await load(target, args.requests, args.connections, headers)
      control(target, '-d')
      const after = await offCachedPath(target)
      const during: Record<string, number> = {}
      for (const [key, value] of Object.entries(after)) during[key] = value - (before[key] ?? 0)
      const dump = latestMainThreadDump(readdirSync(dir), file)
      if (dump === null) throw new Error(`${name}: callgrind wrote no dump`)
      const perRequest = instructions(readFileSync(join(dir, dump), 'utf8')) / args.requests
      counted.set(name, { perRequest, during })
      await stop(target.child)
      process.stderr.write(
        `  count: ${name}: ${(perRequest / 1000).toFixed(1)} k instructions/request ` +
          `(${((performance.now() - began) / 1000).toFixed(0)} s)\n`,
      )
    }
  } finally {
    for (const t of children) await stop(t.child)
    await db?.close()
    if (args.keep) process.stderr.write(`callgrind dumps kept in ${dir}\n`)
    else rmSync(dir, { recursive: true, force: true })
  }

  const bare = counted.get('bare undici proxy')?.perRequest
  const rows: Row[] = [...counted].map(([name, { perRequest, during }]) =>
    row(
      'count',
      `${name}, ${args.connections} conn`,
      `${(perRequest / 1000).toFixed(1)} k instructions/req` +
        (during['claimsLookups'] === undefined
          ? ''
          : `; during the count: ${during['claimsLookups']} claims lookups, ${during['tokenCacheMisses']} token cache misses`),
      { instructionsPerReq: Math.round(perRequest), ...during },
      name === 'bare undici proxy' || bare === undefined
        ? {}
        : { versus: `${(perRequest / bare).toFixed(2)}x bare` },
    ),
  )
  const results = writeResults('latest-count.json', rows, false)
  const seconds = ((performance.now() - started) / 1000).toFixed(0)
  process.stdout.write(
    `\npostgrest-gateway instruction counts (callgrind, main thread), ${results.node}, ` +
      `${args.requests} requests after ${args.warmUp} of warm-up, ${seconds} s\n\n` +
      `${renderTable(rows, null)}\n\nresults: bench/results/latest-count.json\n`,
  )
}

await main()
