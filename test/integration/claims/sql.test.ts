// Integration: the shipped SQL: install/uninstall leave the catalog clean, and the custom-claims functions.
import { randomUUID } from 'node:crypto'
import type postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAuthDatabase, insertUser, runSqlFile, type TestDatabase, testServer } from './helpers.js'

let server: Awaited<ReturnType<typeof testServer>>

beforeAll(async () => {
  server = await testServer()
})

afterAll(async () => {
  await server?.release()
})

/** Every user-visible object: schemas, relations, functions, triggers (with their owners' names). */
async function catalog(sql: postgres.Sql): Promise<Array<{ kind: string; name: string }>> {
  const rows = await sql<Array<{ kind: string; name: string }>>`
    select 'schema' as kind, nspname as name from pg_namespace
     where nspname not like 'pg\\_%' and nspname <> 'information_schema'
    union all
    select 'relation', n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
    union all
    select 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname not in ('pg_catalog', 'information_schema')
    union all
    select 'trigger', tgrelid::regclass || '.' || tgname from pg_trigger where not tgisinternal
    order by 1, 2`
  return [...rows]
}

async function triggers(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql<{ name: string }[]>`
    select tgrelid::regclass || '.' || tgname as name from pg_trigger
     where not tgisinternal and tgname like 'postgrest_gateway%' order by 1`
  return rows.map((row) => row.name)
}

describe('install.sql and uninstall.sql', () => {
  let db: TestDatabase

  beforeAll(async () => {
    db = await createAuthDatabase(server.adminUrl, { install: false })
  })

  afterAll(async () => {
    await db?.drop()
  })

  it('installs idempotently, keeps the configured channel, and uninstalls without a trace', async () => {
    const before = await catalog(db.sql)
    await runSqlFile(db.url, 'install.sql')
    const installed = await catalog(db.sql)
    expect(await triggers(db.sql)).toEqual([
      'auth.sessions.postgrest_gateway_session_delete',
      'auth.sessions.postgrest_gateway_session_truncate',
      'auth.sessions.postgrest_gateway_session_update',
      'auth.users.postgrest_gateway_user_insert_delete',
      'auth.users.postgrest_gateway_user_truncate',
      'auth.users.postgrest_gateway_user_update',
    ])
    await db.sql`update postgrest_gateway.config set notify_channel = 'elsewhere'`
    await runSqlFile(db.url, 'install.sql')
    expect(await catalog(db.sql)).toEqual(installed)
    expect(await db.sql`select notify_channel from postgrest_gateway.config`).toEqual([
      { notify_channel: 'elsewhere' },
    ])

    // One notification per change, on the configured channel, with the documented payload.
    const received: string[] = []
    const listener = await db.sql.listen('elsewhere', (payload) => received.push(payload))
    const id = await insertUser(db.sql)
    await db.sql`update auth.users set raw_app_meta_data = '{"a":1}' where id = ${id}`
    await db.sql`update auth.users set email = 'x@example.com' where id = ${id}`
    const session = randomUUID()
    await db.sql`insert into auth.sessions (id, user_id) values (${session}, ${id})`
    await db.sql`delete from auth.sessions where id = ${session}`
    await db.sql`truncate auth.sessions`
    await db.sql`select pg_notify('elsewhere', 'done')`
    const deadline = Date.now() + 2_000
    while (!received.includes('done') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    await listener.unlisten()
    expect(received).toEqual([
      `{"user_id" : "${id}"}`,
      `{"user_id" : "${id}"}`,
      `{"user_id" : "${id}", "session_id" : "${session}"}`,
      '{"reset":true}',
      'done',
    ])

    await runSqlFile(db.url, 'uninstall.sql')
    expect(await catalog(db.sql)).toEqual(before)
    // Safe to run again, and on a database where nothing was installed.
    await runSqlFile(db.url, 'uninstall.sql')
    expect(await catalog(db.sql)).toEqual(before)
  })
})

describe('custom-claims.sql', () => {
  let db: TestDatabase
  let admin: string
  let user: string
  const future = Math.floor(Date.now() / 1000) + 3600
  const past = Math.floor(Date.now() / 1000) - 10

  beforeAll(async () => {
    db = await createAuthDatabase(server.adminUrl)
    await runSqlFile(db.url, 'custom-claims.sql')
    admin = await insertUser(db.sql, { provider: 'email', claims_admin: true })
    user = await insertUser(db.sql, { provider: 'email', plan: 'free' })
  })

  afterAll(async () => {
    await db?.drop()
  })

  /** Runs `query` as PostgREST would for a request with these claims: role and claims set locally. */
  async function asRequest<T>(
    role: string,
    claims: Record<string, unknown>,
    query: (tx: postgres.TransactionSql) => Promise<T>,
  ): Promise<T> {
    return (await db.sql.begin(async (tx) => {
      await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${JSON.stringify({ ...claims, role })}, true)`
      return await query(tx)
    })) as T
  }

  it('lets a session outside PostgREST (no role switched, no claims) manage claims', async () => {
    expect(await db.sql`select public.is_claims_admin() as ok`).toEqual([{ ok: true }])
    expect(await db.sql`select public.set_claim(${user}::uuid, 'userrole', '"STAFF"') as r`).toEqual([
      { r: 'OK' },
    ])
    expect(await db.sql`select public.get_claim(${user}::uuid, 'userrole') as r`).toEqual([{ r: 'STAFF' }])
    expect(await db.sql`select public.get_claims(${user}::uuid) as r`).toEqual([
      { r: { provider: 'email', plan: 'free', userrole: 'STAFF' } },
    ])
    expect(await db.sql`select public.delete_claim(${user}::uuid, 'userrole') as r`).toEqual([{ r: 'OK' }])
    expect(await db.sql`select public.get_claims(${user}::uuid) as r`).toEqual([
      { r: { provider: 'email', plan: 'free' } },
    ])
    expect(await db.sql`select public.get_claim(${user}::uuid, 'missing') as r`).toEqual([{ r: null }])
  })

  it('refuses an authenticated user without claims_admin', async () => {
    const claims = { sub: user, exp: future, app_metadata: { provider: 'email', plan: 'free' } }
    const rows = await asRequest(
      'authenticated',
      claims,
      (tx) => tx`select public.is_claims_admin() as admin,
                  public.set_claim(${user}::uuid, 'plan', '"pro"') as set,
                  public.delete_claim(${user}::uuid, 'plan') as del,
                  public.get_claims(${user}::uuid) as claims,
                  public.get_claim(${user}::uuid, 'plan') as claim`,
    )
    expect(rows).toEqual([
      {
        admin: false,
        set: 'error: access denied',
        del: 'error: access denied',
        claims: { error: 'access denied' },
        claim: { error: 'access denied' },
      },
    ])
    expect(await db.sql`select raw_app_meta_data as r from auth.users where id = ${user}`).toEqual([
      { r: { provider: 'email', plan: 'free' } },
    ])
  })

  it('accepts claims_admin in unexpired claims, and service_role', async () => {
    const claims = { sub: admin, exp: future, app_metadata: { provider: 'email', claims_admin: true } }
    expect(
      await asRequest(
        'authenticated',
        claims,
        (tx) => tx`select public.set_claim(${user}::uuid, 'plan', '"pro"') as r`,
      ),
    ).toEqual([{ r: 'OK' }])
    expect(
      await asRequest('service_role', {}, (tx) => tx`select public.get_claim(${user}::uuid, 'plan') as r`),
    ).toEqual([{ r: 'pro' }])
  })

  it('refuses claims_admin in expired claims', async () => {
    const claims = { sub: admin, exp: past, app_metadata: { claims_admin: true } }
    expect(
      await asRequest(
        'authenticated',
        claims,
        (tx) => tx`select public.set_claim(${user}::uuid, 'plan', '"x"') as r`,
      ),
    ).toEqual([{ r: 'error: access denied' }])
  })

  it("reads the caller's own claims from request.jwt.claims", async () => {
    const claims = { sub: user, exp: future, app_metadata: { plan: 'pro', tags: ['a'] } }
    expect(
      await asRequest(
        'authenticated',
        claims,
        (tx) => tx`select public.get_my_claims() as mine, public.get_my_claim('plan') as plan,
                          public.get_my_claim('missing') as missing`,
      ),
    ).toEqual([{ mine: { plan: 'pro', tags: ['a'] }, plan: 'pro', missing: null }])
    expect(await db.sql`select public.get_my_claims() as mine, public.get_my_claim('plan') as plan`).toEqual([
      { mine: {}, plan: null },
    ])
  })

  it('installs twice and uninstalls without a trace', async () => {
    const installed = await catalog(db.sql)
    await runSqlFile(db.url, 'custom-claims.sql')
    expect(await catalog(db.sql)).toEqual(installed)
    await runSqlFile(db.url, 'custom-claims-uninstall.sql')
    const functions = (await catalog(db.sql)).filter((row) =>
      (row as { name: string }).name.startsWith('public.'),
    )
    expect(functions).toEqual([])
  })
})
