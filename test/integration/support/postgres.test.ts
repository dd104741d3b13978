// Tests of test support: the embedded PostgreSQL used by integration and e2e suites.
import { existsSync } from 'node:fs'
import postgres from 'postgres'
import { describe, expect, test } from 'vitest'
import { startPostgres } from '../../support/postgres.js'
import { adminUrl } from '../../support/shared-postgres.js'

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('startPostgres', () => {
  test('the shared cluster answers with the fast test settings', async () => {
    const sql = postgres(adminUrl(), { max: 1 })
    try {
      const rows = await sql`select current_setting('fsync') as fsync, current_user as who`
      expect(rows).toEqual([{ fsync: 'off', who: 'postgres' }])
    } finally {
      await sql.end()
    }
  })

  test('restarts on the same port with the same data, and destroy removes everything', async () => {
    const pg = await startPostgres()
    const firstPid = pg.pid
    expect(firstPid).not.toBeNull()
    let sql = postgres(pg.url, { max: 1 })
    await sql`create table kept (v int)`
    await sql`insert into kept values (42)`
    await sql.end()

    await pg.stop()
    expect(pg.pid).toBeNull()
    expect(isAlive(firstPid!)).toBe(false)
    expect(existsSync(pg.dataDir)).toBe(true)

    await pg.start()
    sql = postgres(pg.url, { max: 1 })
    expect(await sql`select v from kept`).toEqual([{ v: 42 }])
    await sql.end()

    const secondPid = pg.pid!
    await pg.destroy()
    expect(isAlive(secondPid)).toBe(false)
    expect(existsSync(pg.dataDir)).toBe(false)
  })
})
