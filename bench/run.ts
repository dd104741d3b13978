// Benchmarks: the runner. Micro, load and memory parts, one summary table, results JSON vs the committed baseline.
// Run: npm run bench [-- --quick] [-- --soak[=seconds]] [-- --only=micro,load,memory]; BENCH_QUICK=1 = --quick.
// Load knobs: BENCH_ROUNDS, BENCH_ROUND_SECONDS, BENCH_GATEWAY_NODE_ARGS, BENCH_GATEWAY_COMPARE (A/B, see load.ts).
import { existsSync, readFileSync } from 'node:fs'
import { type BenchDatabase, startBenchDatabase } from './database.js'
import { benchConfig, makeUsers } from './fixtures.js'
import { runLoad } from './load.js'
import { runMemory } from './memory.js'
import { DECISION_USERS, runMicro } from './micro.js'
import { RESULTS_DIR, type Results, type Row, renderTable, writeResults } from './report.js'

interface Args {
  readonly quick: boolean
  readonly soakSeconds: number
  readonly only: ReadonlySet<string>
}

function parseArgs(argv: readonly string[]): Args {
  let quick = process.env['BENCH_QUICK'] === '1'
  let soakSeconds = 0
  let only = new Set(['micro', 'load', 'memory'])
  for (const arg of argv) {
    if (arg === '--quick') quick = true
    else if (arg === '--soak') soakSeconds = 300
    else if (arg.startsWith('--soak=')) soakSeconds = Number(arg.slice(7))
    else if (arg.startsWith('--only=')) only = new Set(arg.slice(7).split(','))
    else throw new Error(`unknown argument ${arg} (use --quick, --soak[=seconds], --only=micro,load,memory)`)
  }
  return { quick, soakSeconds, only }
}

function readBaseline(): Results | null {
  const file = new URL('baseline.json', RESULTS_DIR)
  if (!existsSync(file)) return null
  return JSON.parse(readFileSync(file, 'utf8')) as Results
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const started = performance.now()
  const rows: Row[] = []
  // The load test's 100 users first; the micro benchmarks' decision also uses all of them.
  const users = makeUsers(DECISION_USERS)
  let db: BenchDatabase | null = null
  try {
    if (args.only.size > 0) {
      process.stderr.write('starting PostgreSQL\n')
      db = await startBenchDatabase()
      await db.addUsers(users)
    }
    if (args.only.has('micro')) {
      process.stderr.write('micro benchmarks\n')
      rows.push(
        ...(await runMicro({ quick: args.quick, users, config: benchConfig, databaseUrl: db?.url ?? null })),
      )
    }
    if (args.only.has('load')) {
      process.stderr.write('load benchmarks\n')
      rows.push(
        ...(await runLoad({
          quick: args.quick,
          users: users.slice(0, 100),
          databaseUrl: db?.url ?? null,
          soakSeconds: args.soakSeconds,
        })),
      )
    }
    // Last: it adds 100,000 users to the database.
    if (args.only.has('memory') && db !== null) {
      process.stderr.write('memory\n')
      rows.push(...(await runMemory({ quick: args.quick, db })))
    }
  } finally {
    await db?.close()
  }

  const results = writeResults('latest.json', rows, args.quick)
  const seconds = ((performance.now() - started) / 1000).toFixed(0)
  process.stdout.write(
    `\npostgrest-gateway benchmarks, ${results.node}, ${results.machine.cpus} x ${results.machine.model}` +
      `${args.quick ? ', quick' : ''}, ${seconds} s\n\n${renderTable(rows, readBaseline())}\n\n` +
      'results: bench/results/latest.json (copy to bench/results/baseline.json to make it the baseline)\n',
  )
  const failed = rows.filter((r) => r.pass === false).length
  process.stdout.write(failed === 0 ? 'all targets met\n' : `${failed} target(s) not met\n`)
}

await main()
