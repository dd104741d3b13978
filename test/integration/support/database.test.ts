// Tests of test support: per-file databases and the Supabase-shaped demo schema under RLS.
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { adminUrl } from '../../support/shared-postgres.js'

async function notesAs(url: string, role: string, claims: object): Promise<number[]> {
  const sql = postgres(url, { max: 1 })
  try {
    return await sql.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`
      const rows = await tx<{ id: string }[]>`select id from public.notes order by id`
      return rows.map((row) => Number(row.id))
    })
  } finally {
    await sql.end()
  }
}

describe('createTestDatabase', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
  })
  afterAll(async () => {
    await db.drop()
  })

  test('RLS: anon sees public notes, a user her own too, a manager everything', async () => {
    const alice = { sub: DEMO_USERS.alice.id, role: 'authenticated', app_metadata: { provider: 'email' } }
    expect(await notesAs(db.authenticatorUrl, 'anon', { role: 'anon' })).toEqual([1, 5])
    expect(await notesAs(db.authenticatorUrl, 'authenticated', alice)).toEqual([1, 2, 5])
    const promoted = { ...alice, app_metadata: { provider: 'email', role: 'manager' } }
    expect(await notesAs(db.authenticatorUrl, 'authenticated', promoted)).toEqual([1, 2, 3, 4, 5])
    expect(
      await notesAs(db.authenticatorUrl, 'manager', { sub: DEMO_USERS.bob.id, role: 'manager' }),
    ).toEqual([1, 2, 3, 4, 5])
  })

  test('auth.uid(), auth.role() and auth.jwt() read request.jwt.claims as in Supabase', async () => {
    const sql = postgres(db.url, { max: 1 })
    try {
      const rows = await sql.begin(async (tx) => {
        const claims = JSON.stringify({ sub: DEMO_USERS.carol.id, role: 'authenticated', aal: 'aal1' })
        await tx`select set_config('request.jwt.claims', ${claims}, true)`
        return await tx`select auth.uid()::text as uid, auth.role() as role, auth.jwt() ->> 'aal' as aal`
      })
      expect(rows).toEqual([{ uid: DEMO_USERS.carol.id, role: 'authenticated', aal: 'aal1' }])
      expect(await sql`select auth.uid() as uid`).toEqual([{ uid: null }])
    } finally {
      await sql.end()
    }
  })

  test('each database is separate and drop removes it; the schema files are idempotent', async () => {
    const other = await createTestDatabase(adminUrl(), {
      schema: 'supabase',
      sql: ['sql/demo/supabase-auth.sql'],
    })
    const sql = postgres(adminUrl(), { max: 1 })
    try {
      const count = async (name: string) =>
        Number((await sql`select count(*) as n from pg_database where datname = ${name}`)[0]!['n'])
      expect(await count(other.name)).toBe(1)
      const inOther = postgres(other.url, { max: 1 })
      expect(
        await inOther`select to_regclass('public.notes') as t, to_regclass('auth.users')::text as u`,
      ).toEqual([{ t: null, u: 'auth.users' }])
      await inOther.end()
      await other.drop()
      expect(await count(other.name)).toBe(0)
    } finally {
      await sql.end()
    }
  })

  test('an empty database has no auth schema', async () => {
    const empty = await createTestDatabase(adminUrl(), { schema: 'empty' })
    const sql = postgres(empty.url, { max: 1 })
    try {
      expect(await sql`select to_regnamespace('auth') as auth`).toEqual([{ auth: null }])
    } finally {
      await sql.end()
      await empty.drop()
    }
  })
})
