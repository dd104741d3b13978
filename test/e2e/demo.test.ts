// End to end: `npm run demo` as a child process, its printed commands, a promotion, and a clean Ctrl-C.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import postgres from 'postgres'
import { afterAll, describe, expect, test } from 'vitest'
import { repoRoot } from '../support/database.js'

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('demo', () => {
  let child: ChildProcess | null = null
  afterAll(() => {
    if (child !== null && child.exitCode === null) child.kill('SIGKILL')
  })

  test('starts the stack, answers the printed requests, sees a promotion at once, stops on SIGINT', async () => {
    const demo = spawn(process.execPath, [join(repoRoot(), 'dist', 'scripts', 'demo.js')], {
      env: {
        ...process.env,
        DEMO_GATEWAY_PORT: '0',
        DEMO_ADMIN_PORT: '0',
        DEMO_POSTGREST_PORT: '0',
        DEMO_PG_PORT: '0',
        DEMO_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = demo
    let out = ''
    let err = ''
    demo.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk
    })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      demo.once('exit', (code, signal) => resolve({ code, signal })),
    )
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner within 60 s:\n${out}\n${err}`)), 60_000)
      demo.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk
        if (out.includes('Ctrl-C stops everything.')) {
          clearTimeout(timer)
          resolve()
        }
      })
      demo.once('exit', () => reject(new Error(`demo exited early:\n${out}\n${err}`)))
    })

    const gateway = /Gateway\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!
    const alice = /export ALICE='([^']+)'/.exec(out)![1]!
    const pg = /PostgreSQL\s+(\S+)\s+\(pid (\d+)\)/.exec(out)!
    const dbUrl = pg[1]!
    const pgPid = Number(pg[2])
    expect(isAlive(pgPid)).toBe(true)

    const ids = async (auth: string | null) => {
      const res = await fetch(`${gateway}/notes?select=id,title`, {
        headers: auth === null ? {} : { authorization: `Bearer ${auth}` },
      })
      expect(res.status).toBe(200)
      return ((await res.json()) as { id: number }[]).map((row) => row.id)
    }
    expect(await ids(null)).toEqual([1, 5])
    expect(await ids(alice)).toEqual([1, 2, 5])

    // The banner's promotion, then alice's very next request with the same token.
    const sql = postgres(dbUrl, { max: 1 })
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"manager"}' where email = 'alice@example.com'`
    await sql.end()
    let seen: number[] = []
    for (let i = 0; i < 50; i++) {
      seen = await ids(alice)
      if (seen.length === 5) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(seen).toEqual([1, 2, 3, 4, 5])

    demo.kill('SIGINT')
    expect(await exited).toEqual({ code: 0, signal: null })
    expect(out).toContain('Stopped.')
    expect(isAlive(pgPid)).toBe(false)
  }, 90_000)
})
