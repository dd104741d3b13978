// Benchmarks, memory: 100,000 distinct users and tokens cached; heap measured after GC in a child process.
import { fork } from 'node:child_process'
import type { BenchDatabase } from './database.js'
import { makeUsers } from './fixtures.js'
import { type Row, row } from './report.js'

export interface MemoryOptions {
  readonly quick: boolean
  readonly db: BenchDatabase
}

interface ChildReport {
  readonly users: number
  readonly cachedTokens: number
  /** Users whose minted token is still kept (bounded by mint.cacheMaxEntries). */
  readonly mintedTokens: number
  readonly mintCacheMaxEntries: number
  readonly heapMb: number
  readonly cachesMb: number
  readonly seconds: number
}

const TARGET_USERS = 100_000
const LIMIT_MB = 200

export async function runMemory(options: MemoryOptions): Promise<Row[]> {
  // Quick: a fifth of the users, the figure scaled up (labelled as such).
  const users = options.quick ? TARGET_USERS / 5 : TARGET_USERS
  process.stderr.write(`  memory: ${users} users\n`)
  await options.db.addUsers(makeUsers(users))
  const child = fork(new URL('./memory-child.js', import.meta.url), [], {
    execArgv: ['--expose-gc'],
    env: { ...process.env, DB_URL: options.db.url, USERS: String(users) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const report = await new Promise<ChildReport>((resolve, reject) => {
    child.once('message', (message: ChildReport) => resolve(message))
    child.once('exit', (code) => reject(new Error(`memory child exited with ${code}`)))
  })
  await new Promise((resolve) => child.once('exit', resolve))
  const scale = TARGET_USERS / report.users
  const total = report.heapMb + report.cachesMb * (scale - 1)
  const perUser = (report.cachesMb * 2 ** 20) / report.users
  return [
    row(
      'memory',
      // Verified tokens and claims are kept for every user; minted tokens only up to their bound
      // (GATEWAY_MINT_CACHE_MAX_ENTRIES): the row says how many, measured, not assumed.
      `heap, ${TARGET_USERS.toLocaleString('en')} users cached (tokens and claims), ` +
        `${report.mintedTokens.toLocaleString('en')} minted tokens` +
        `${scale === 1 ? '' : ` (scaled from ${report.users} users)`}`,
      `${total.toFixed(0)} MB heap, ${report.cachesMb.toFixed(0)} MB for caches, ${perUser.toFixed(0)} B/user`,
      {
        heapMb: Math.round(total),
        cachesMb: Math.round(report.cachesMb * scale),
        bytesPerUser: Math.round(perUser),
        mintedTokens: report.mintedTokens,
        mintCacheMaxEntries: report.mintCacheMaxEntries,
      },
      { target: `< ${LIMIT_MB} MB`, pass: total < LIMIT_MB },
    ),
  ]
}
