// Integration: PostgreSQL stops and comes back: stale answers within maxStale, fail closed, reconnect, token fallback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClaimsStore, createClaimsStore } from '../../../src/claims/index.js'
import type { ClaimsConfig } from '../../../src/config/types.js'
import { type PostgresServer, startPostgres } from '../../support/postgres.js'
import {
  claimsConfig,
  createAuthDatabase,
  dbConfig,
  failure,
  insertUser,
  type TestDatabase,
  trackNotifications,
  until,
  verifiedToken,
} from './helpers.js'

let server: PostgresServer
let db: TestDatabase

beforeAll(async () => {
  server = await startPostgres()
  db = await createAuthDatabase(server.url)
})

afterAll(async () => {
  await server?.destroy()
})

function openStore(claims: Partial<ClaimsConfig>, now: () => number): ClaimsStore {
  return createClaimsStore({
    db: dbConfig(db.url, { lookupTimeoutMs: 1_000 }),
    claims: claimsConfig(claims),
    now,
    listener: { backoffMs: { initial: 50, max: 500 }, heartbeatMs: 1_000 },
  })
}

const unavailable = { kind: 'ClaimsUnavailable', status: 503, code: 'GW105' }

describe('when PostgreSQL stops', () => {
  it('serves cached users within maxStale, fails closed for others, and recovers after a restart', async () => {
    let clock = Date.now()
    const store = openStore({ maxStaleSeconds: 300 }, () => clock)
    const cleared: Array<string | null> = []
    store.onInvalidate((userId) => cleared.push(userId))
    const notifications = trackNotifications(store)
    try {
      await store.start()
      const cached = await insertUser(db.sql, { plan: 'pro' })
      const uncached = await insertUser(db.sql, { plan: 'free' })
      // The inserts' own notifications arrive asynchronously: one landing after the first lookup
      // would evict its answer, and the synchronous hit below would be a Promise instead.
      await notifications.barrier(db.sql)
      const token = verifiedToken(cached)
      const before = await store.freshen(token)
      expect(store.freshen(token)).toBe(before)

      await server.stop()
      await until(() => !store.listening, 5_000)
      // The listener dropped: the cache was cleared (nothing served without asking first).
      expect(cleared).toContain(null)
      const lookups = store.lookups
      await expect(Promise.resolve(store.freshen(token))).resolves.toBe(before)
      expect(store.lookups).toBe(lookups + 1)
      // The database is known to be down now: the stale answer comes at once.
      expect(store.freshen(token)).toBe(before)
      expect(await failure(() => store.freshen(verifiedToken(uncached)))).toEqual(unavailable)

      // Past maxStale even the cached user fails closed.
      clock += 301_000
      expect(await failure(() => store.freshen(token))).toEqual(unavailable)

      await server.start()
      await until(() => store.listening, 15_000)
      await until(async () => {
        try {
          await store.freshen(verifiedToken(uncached))
          return true
        } catch {
          return false
        }
      }, 10_000)
      expect(await store.freshen(verifiedToken(uncached))).toMatchObject({ appMetadata: { plan: 'free' } })
      expect(await store.freshen(token)).toMatchObject({
        appMetadata: { plan: 'pro' },
        version: before.version,
      })

      // Invalidation works again on the new connection.
      await db.sql`update auth.users set raw_app_meta_data = '{"plan":"enterprise"}' where id = ${cached}`
      await until(async () => (await store.freshen(token)).appMetadata['plan'] === 'enterprise', 2_000)
    } finally {
      await store.close()
    }
  })

  it("falls back to the token's claims with onDatabaseDown: 'token'", async () => {
    const store = openStore({ onDatabaseDown: 'token' }, Date.now)
    try {
      await store.start()
      const id = await insertUser(db.sql, { plan: 'pro' })
      await server.stop()
      await until(() => !store.listening, 5_000)
      const token = verifiedToken(id, { appMetadata: { plan: 'from-token' }, role: 'authenticated' })
      expect(await store.freshen(token)).toEqual({
        userId: id,
        appMetadata: { plan: 'from-token' },
        role: 'authenticated',
        version: 0,
        source: 'token',
      })
      await server.start()
      await until(() => store.listening, 15_000)
      await until(async () => (await store.freshen(token)).source === 'database', 10_000)
      expect(await store.freshen(token)).toMatchObject({ appMetadata: { plan: 'pro' }, source: 'database' })
    } finally {
      await store.close()
    }
  })

  it('reconnects after its listening connection is terminated, clearing the cache', async () => {
    const store = openStore({}, Date.now)
    const cleared: Array<string | null> = []
    store.onInvalidate((userId) => cleared.push(userId))
    try {
      await store.start()
      const id = await insertUser(db.sql)
      await store.freshen(verifiedToken(id))
      await db.sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'postgrest-gateway listener'`
      await until(() => cleared.includes(null), 5_000)
      await until(() => store.listening, 5_000)
      const again = store.freshen(verifiedToken(id))
      expect(again).toBeInstanceOf(Promise)
      await expect(again).resolves.toMatchObject({ userId: id })
    } finally {
      await store.close()
    }
  })
})
