// End to end: PostgreSQL stops mid-run behind a gateway process: stale answers for cached users, 503 for others, readiness, recovery.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DEMO_USERS } from '../../support/database.js'
import { type PostgresServer, startPostgres } from '../../support/postgres.js'
import {
  call,
  demoToken,
  errorBody,
  eventually,
  metric,
  readiness,
  requestContext,
  type Stack,
  startStack,
} from './stack.js'

let server: PostgresServer
let stack: Stack

beforeAll(async () => {
  server = await startPostgres()
  stack = await startStack({ adminUrl: server.url, env: { GATEWAY_DB_LOOKUP_TIMEOUT_MS: '1000' } })
})

afterAll(async () => {
  await stack?.close()
  await server?.destroy()
})

const INVALIDATIONS = 'gateway_claims_invalidations_total'

describe('when PostgreSQL stops and comes back', () => {
  test('cached users keep working, others get 503 GW105, /ready follows the listener, and both recover', async () => {
    const { gateway } = stack
    const alice = demoToken('alice')
    const bob = demoToken('bob')
    // alice is cached (user and session); bob has never been seen.
    expect((await requestContext(gateway, alice)).status).toBe(200)
    expect(await readiness(gateway)).toBe(200)
    expect(await metric(gateway, INVALIDATIONS, 'kind="disconnect"')).toBe(0)

    await server.stop()
    await eventually(
      async () => ((await readiness(gateway)) === 503 ? true : undefined),
      10_000,
      '/ready 503',
    )
    // The listener dropped: nothing cached is trusted without asking the database first.
    expect(await metric(gateway, INVALIDATIONS, 'kind="disconnect"')).toBe(1)
    const failedLookups = await metric(gateway, 'gateway_claims_lookups_total', 'result="error"')

    // The stand-in's echo endpoint needs no database: it shows what the gateway minted.
    const stale = await call(gateway, '/__standin/echo', alice)
    expect(stale.status).toBe(200)
    expect(stale.json).toMatchObject({
      auth: {
        role: 'authenticated',
        claims: { sub: DEMO_USERS.alice.id, app_metadata: { provider: 'email', providers: ['email'] } },
      },
    })
    // It was asked first (and failed), then the cached answer was served.
    expect(await metric(gateway, 'gateway_claims_lookups_total', 'result="error"')).toBeGreaterThan(
      failedLookups,
    )
    expect((await call(gateway, '/__standin/echo', alice)).status).toBe(200)

    const refused = await call(gateway, '/__standin/echo', bob)
    expect(refused.status).toBe(503)
    expect(refused.text).toBe(errorBody('GW105', 'Current claims cannot be read'))
    expect(refused.headers.get('retry-after')).toBe('5')
    expect(refused.headers.get('proxy-status')).toBe('postgrest-gateway; error=GW105')
    expect(gateway.process.exitCode).toBeNull()

    await server.start()
    await eventually(
      async () => ((await readiness(gateway)) === 200 ? true : undefined),
      20_000,
      '/ready 200',
    )
    expect(await metric(gateway, INVALIDATIONS, 'kind="reconnect"')).toBe(1)
    const recovered = await eventually(
      async () => {
        const answer = await requestContext(gateway, bob)
        return answer.status === 200 ? answer : undefined
      },
      10_000,
      'bob after the restart',
    )
    expect(recovered.value).toMatchObject({ role: 'manager', claims: { sub: DEMO_USERS.bob.id } })
    expect(await requestContext(gateway, alice)).toMatchObject({ status: 200, role: 'authenticated' })

    // The new listening connection hears changes again.
    await stack.sql`select public.set_claim(${DEMO_USERS.alice.id}::uuid, 'role', '"manager"'::jsonb)`
    await eventually(
      async () => ((await requestContext(gateway, alice)).role === 'manager' ? true : undefined),
      2_000,
      'a change after the restart',
    )
    expect(gateway.stderr()).not.toContain('unhandled rejection')
  }, 60_000)
})
