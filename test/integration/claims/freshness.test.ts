// Integration: freshen against real PostgreSQL: changes are visible on the next request, revocation, coalescing.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type ClaimsStore, createClaimsStore } from '../../../src/claims/index.js'
import { createMetrics } from '../../../src/observability/metrics.js'
import {
  claimsConfig,
  createAuthDatabase,
  dbConfig,
  failure,
  insertSession,
  insertUser,
  runSqlFile,
  type TestDatabase,
  testServer,
  trackNotifications,
  until,
  verifiedToken,
} from './helpers.js'

let server: Awaited<ReturnType<typeof testServer>>
let db: TestDatabase
const stores: ClaimsStore[] = []
const trackers = new Map<ClaimsStore, ReturnType<typeof trackNotifications>>()

async function openStore(
  options: Partial<Parameters<typeof createClaimsStore>[0]> = {},
): Promise<ClaimsStore> {
  const store = createClaimsStore({ db: dbConfig(db.url), claims: claimsConfig(), ...options })
  trackers.set(store, trackNotifications(store))
  stores.push(store)
  await store.start()
  expect(store.listening).toBe(true)
  return store
}

/** Every notification committed so far (an insert's too) has reached the store. */
async function settle(store: ClaimsStore): Promise<void> {
  await trackers.get(store)?.barrier(db.sql)
}

beforeAll(async () => {
  server = await testServer()
  db = await createAuthDatabase(server.adminUrl)
  await runSqlFile(db.url, 'custom-claims.sql')
})

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()))
})

afterAll(async () => {
  await db?.drop()
  await server?.release()
})

describe('freshen', () => {
  it('returns the current app_metadata and role, then answers from the cache synchronously', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql, { provider: 'email', plan: 'free' })
    await settle(store)
    const token = verifiedToken(id, { appMetadata: { provider: 'email', plan: 'stale-from-token' } })
    const first = await store.freshen(token)
    expect(first).toEqual({
      userId: id,
      appMetadata: { provider: 'email', plan: 'free' },
      role: 'authenticated',
      version: first.version,
      source: 'database',
    })
    const second = store.freshen(token)
    expect(second).not.toBeInstanceOf(Promise)
    expect(second).toBe(first)
    expect(store.lookups).toBe(1)
  })

  it("shows set_claim(uid, 'userrole', '\"STAFF\"') on the very next freshen after the commit", async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    const token = verifiedToken(id)
    const before = await store.freshen(token)
    expect(before.appMetadata['userrole']).toBeUndefined()
    const rows = await db.sql`select public.set_claim(${id}::uuid, 'userrole', '"STAFF"'::jsonb) as result`
    expect(rows).toEqual([{ result: 'OK' }])
    const latencyMs = await until(
      async () => (await store.freshen(token)).appMetadata['userrole'] === 'STAFF',
      1_000,
    )
    const after = await store.freshen(token)
    expect(after.appMetadata).toEqual({ provider: 'email', providers: ['email'], userrole: 'STAFF' })
    expect(after.version).not.toBe(before.version)
    console.log(`commit-to-visible: ${latencyMs.toFixed(2)} ms`)
  })

  it('a token answered from its kept entries still sees a change, a sign-out and a ban on the next request', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    const session = await insertSession(db.sql, id)
    await settle(store)
    const token = verifiedToken(id, { sessionId: session })
    /** Two cached answers: the first keeps the entries on the token, the second is served from them. */
    const cachedTwice = () => {
      const a = store.freshen(token)
      const b = store.freshen(token)
      expect(a).not.toBeInstanceOf(Promise)
      expect(b).toBe(a)
      return b as Exclude<typeof b, Promise<unknown>>
    }
    await store.freshen(token)
    expect(cachedTwice().appMetadata['userrole']).toBeUndefined()
    expect(store.lookups).toBe(1)

    await db.sql`select public.set_claim(${id}::uuid, 'userrole', '"STAFF"'::jsonb)`
    await settle(store)
    expect((await store.freshen(token)).appMetadata['userrole']).toBe('STAFF')
    expect(cachedTwice().appMetadata['userrole']).toBe('STAFF')
    expect(store.lookups).toBe(2)

    await db.sql`update auth.users set banned_until = now() + interval '1 hour' where id = ${id}`
    await settle(store)
    expect(await failure(() => store.freshen(token))).toEqual({
      kind: 'UserBanned',
      status: 401,
      code: 'GW103',
    })
    await db.sql`update auth.users set banned_until = null where id = ${id}`
    await settle(store)
    await store.freshen(token)
    expect(cachedTwice().userId).toBe(id)

    await db.sql`delete from auth.sessions where id = ${session}`
    await settle(store)
    expect(await failure(() => store.freshen(token))).toEqual({
      kind: 'SessionRevoked',
      status: 401,
      code: 'GW104',
    })
  })

  it('shows a changed role column, and keeps the version when a reload finds the same content', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    await settle(store)
    const token = verifiedToken(id)
    const before = await store.freshen(token)
    await db.sql`update auth.users set role = 'manager' where id = ${id}`
    await until(async () => (await store.freshen(token)).role === 'manager', 1_000)
    const after = await store.freshen(token)
    expect(after.version).not.toBe(before.version)
    // A notification for an update that changed nothing the gateway reads: same content, same version.
    await db.sql`select pg_notify('postgrest_gateway', json_build_object('user_id', ${id}::text)::text)`
    await until(() => store.freshen(token) instanceof Promise, 1_000)
    expect((await store.freshen(token)).version).toBe(after.version)
  })

  it('does not notify for updates of columns the gateway does not read', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    await settle(store)
    const token = verifiedToken(id)
    await store.freshen(token)
    await db.sql`update auth.users set last_sign_in_at = now(), raw_app_meta_data = raw_app_meta_data where id = ${id}`
    await settle(store)
    expect(store.freshen(token)).not.toBeInstanceOf(Promise)
    expect(store.lookups).toBe(1)
  })

  it('refuses a banned user until the ban is lifted', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    const token = verifiedToken(id)
    await store.freshen(token)
    await db.sql`update auth.users set banned_until = now() + interval '1 hour' where id = ${id}`
    await until(
      async () => (await failure(() => store.freshen(token)).catch(() => null))?.kind === 'UserBanned',
      1_000,
    )
    expect(await failure(() => store.freshen(token))).toEqual({
      kind: 'UserBanned',
      status: 401,
      code: 'GW103',
    })
    await db.sql`update auth.users set banned_until = null where id = ${id}`
    await until(async () => {
      try {
        await store.freshen(token)
        return true
      } catch {
        return false
      }
    }, 1_000)
  })

  it('lets a user back in when the ban expires, with no reload', async () => {
    let clock = Date.now()
    const store = await openStore({ now: () => clock })
    const id = await insertUser(db.sql)
    const bannedUntil = new Date(clock + 30_000)
    await db.sql`update auth.users set banned_until = ${bannedUntil} where id = ${id}`
    await settle(store)
    const token = verifiedToken(id)
    expect(await failure(() => store.freshen(token))).toEqual({
      kind: 'UserBanned',
      status: 401,
      code: 'GW103',
    })
    clock += 30_001
    const claims = store.freshen(token)
    expect(claims).not.toBeInstanceOf(Promise)
    expect(store.lookups).toBe(1)
  })

  it('refuses a deleted user (row gone: UserNotFound; soft delete: UserDeleted) without asking again', async () => {
    const store = await openStore()
    const gone = await insertUser(db.sql)
    const soft = await insertUser(db.sql)
    await store.freshen(verifiedToken(gone))
    await store.freshen(verifiedToken(soft))
    await db.sql`delete from auth.users where id = ${gone}`
    await db.sql`update auth.users set deleted_at = now() where id = ${soft}`
    await until(
      async () =>
        (await failure(() => store.freshen(verifiedToken(gone))).catch(() => null))?.kind === 'UserNotFound',
      1_000,
    )
    await until(
      async () =>
        (await failure(() => store.freshen(verifiedToken(soft))).catch(() => null))?.kind === 'UserDeleted',
      1_000,
    )
    expect(await failure(() => store.freshen(verifiedToken(gone)))).toEqual({
      kind: 'UserNotFound',
      status: 401,
      code: 'GW101',
    })
    expect(await failure(() => store.freshen(verifiedToken(soft)))).toEqual({
      kind: 'UserDeleted',
      status: 401,
      code: 'GW102',
    })
    const lookups = store.lookups
    await failure(() => store.freshen(verifiedToken(gone)))
    expect(store.lookups).toBe(lookups)
  })

  it('answers UserNotFound for an unknown id and for a sub that is not a uuid', async () => {
    const store = await openStore()
    expect(await failure(() => store.freshen(verifiedToken('00000000-0000-4000-8000-000000000000')))).toEqual(
      {
        kind: 'UserNotFound',
        status: 401,
        code: 'GW101',
      },
    )
    expect(await failure(() => store.freshen(verifiedToken('auth0|12345')))).toEqual({
      kind: 'UserNotFound',
      status: 401,
      code: 'GW101',
    })
    // The default query's id is a uuid: other text is answered without a round trip.
    expect(store.lookups).toBe(1)
  })

  it('ends a session at sign-out (row deleted) and when not_after passes', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    const signedOut = await insertSession(db.sql, id)
    const timeboxed = await insertSession(db.sql, id)
    const other = await insertSession(db.sql, id)
    await store.freshen(verifiedToken(id, { sessionId: signedOut }))
    await store.freshen(verifiedToken(id, { sessionId: timeboxed }))
    await db.sql`delete from auth.sessions where id = ${signedOut}`
    await db.sql`update auth.sessions set not_after = now() - interval '1 second' where id = ${timeboxed}`
    const revoked = { kind: 'SessionRevoked', status: 401, code: 'GW104' }
    await until(
      async () =>
        (await failure(() => store.freshen(verifiedToken(id, { sessionId: signedOut }))).catch(() => null))
          ?.kind === 'SessionRevoked',
      1_000,
    )
    await until(
      async () =>
        (await failure(() => store.freshen(verifiedToken(id, { sessionId: timeboxed }))).catch(() => null))
          ?.kind === 'SessionRevoked',
      1_000,
    )
    expect(await failure(() => store.freshen(verifiedToken(id, { sessionId: signedOut })))).toEqual(revoked)
    expect(await failure(() => store.freshen(verifiedToken(id, { sessionId: timeboxed })))).toEqual(revoked)
    // The user's other session and tokens without a session are unaffected.
    await expect(store.freshen(verifiedToken(id, { sessionId: other }))).resolves.toMatchObject({
      userId: id,
    })
    expect(store.freshen(verifiedToken(id))).toMatchObject({ userId: id })
  })

  it('skips the session check when sessionQuery is null', async () => {
    const store = createClaimsStore({ db: dbConfig(db.url, { sessionQuery: null }), claims: claimsConfig() })
    stores.push(store)
    await store.start()
    const id = await insertUser(db.sql)
    await expect(
      store.freshen(verifiedToken(id, { sessionId: '00000000-0000-4000-8000-000000000000' })),
    ).resolves.toMatchObject({ userId: id })
  })

  it('runs one query for 500 concurrent first requests of one user', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql, { tier: 'gold' })
    const token = verifiedToken(id)
    const results = await Promise.all(Array.from({ length: 500 }, () => store.freshen(token)))
    expect(store.lookups).toBe(1)
    expect(new Set(results).size).toBe(1)
    expect(results[0]?.appMetadata).toEqual({ tier: 'gold' })
  })

  it('keeps two stores on one database coherent', async () => {
    const a = await openStore()
    const b = await openStore()
    const id = await insertUser(db.sql, { plan: 'free' })
    const token = verifiedToken(id)
    await a.freshen(token)
    await b.freshen(token)
    await db.sql`select public.set_claim(${id}::uuid, 'plan', '"pro"'::jsonb)`
    await until(async () => (await a.freshen(token)).appMetadata['plan'] === 'pro', 1_000)
    await until(async () => (await b.freshen(token)).appMetadata['plan'] === 'pro', 1_000)
  })

  it('calls onInvalidate with the user id, and with null for a payload it cannot read', async () => {
    const store = await openStore()
    const id = await insertUser(db.sql)
    await settle(store)
    const seen: Array<string | null> = []
    store.onInvalidate((userId) => seen.push(userId))
    await store.freshen(verifiedToken(id))
    await db.sql`update auth.users set raw_app_meta_data = '{"x":1}' where id = ${id}`
    await until(() => seen.length === 1, 1_000)
    await db.sql`notify postgrest_gateway, 'reset'`
    await until(() => seen.length === 2, 1_000)
    expect(seen).toEqual([id, null])
    // Cleared: the next freshen asks the database again.
    expect(store.freshen(verifiedToken(id))).toBeInstanceOf(Promise)
  })

  it('uses a configured query and channel', async () => {
    await db.sql`update postgrest_gateway.config set notify_channel = 'custom_channel'`
    try {
      const store = createClaimsStore({
        db: dbConfig(db.url, {
          notifyChannel: 'custom_channel',
          userQuery:
            'select raw_app_meta_data || \'{"custom":true}\' as app_metadata from auth.users where id::text = $1',
        }),
        claims: claimsConfig(),
      })
      stores.push(store)
      await store.start()
      const id = await insertUser(db.sql, { a: 1 })
      const token = verifiedToken(id)
      expect(await store.freshen(token)).toMatchObject({ appMetadata: { a: 1, custom: true }, role: null })
      await db.sql`update auth.users set raw_app_meta_data = '{"a":2}' where id = ${id}`
      await until(async () => (await store.freshen(token)).appMetadata['a'] === 2, 1_000)
      expect(await failure(() => store.freshen(verifiedToken('not-a-uuid')))).toMatchObject({
        kind: 'UserNotFound',
      })
    } finally {
      await db.sql`update postgrest_gateway.config set notify_channel = 'postgrest_gateway'`
    }
  })

  it('counts lookups, cache events and invalidations in the metrics', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const store = await openStore({ metrics })
    const id = await insertUser(db.sql)
    await settle(store)
    await store.freshen(verifiedToken(id))
    store.freshen(verifiedToken(id))
    await db.sql`update auth.users set role = 'x' where id = ${id}`
    await settle(store)
    await store.freshen(verifiedToken(id))
    const text = await metrics.registry.metrics()
    expect(text).toContain('gateway_claims_cache_total{event="hit"} 1')
    expect(text).toContain('gateway_claims_cache_total{event="miss"} 2')
    expect(text).toContain('gateway_claims_lookups_total{result="found"} 2')
    // The insert, the update and the two barrier markers.
    expect(text).toContain('gateway_claims_invalidations_total{kind="user"} 4')
    expect(text).toContain('gateway_claims_listener_connected 1')
  })
})
