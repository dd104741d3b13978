// Tests of test support: the built gateway as a child process in front of the PostgREST stand-in.
import { CompactSign } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'

const INBOUND = 'inbound-secret-of-the-identity-provider-32+'
const UPSTREAM = 'secret-shared-by-gateway-and-postgrest-32+'

describe('startGateway', () => {
  let db: TestDatabase
  let standIn: StandIn
  let gateway: GatewayProcess

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo', sql: ['sql/install.sql'] })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
    })
    gateway = await startGateway({
      env: {
        GATEWAY_UPSTREAM_URL: standIn.url,
        GATEWAY_JWT_SECRET: INBOUND,
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
        GATEWAY_DB_URL: db.url,
        GATEWAY_ROLES_ALLOWED: 'authenticated,manager',
        GATEWAY_LOG_LEVEL: 'warn',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
      },
    })
  })
  afterAll(async () => {
    await gateway?.stop()
    await standIn?.close()
    await db?.drop()
  })

  test('serves through the stand-in with fresh claims, reports RSS, and exits 0 on SIGTERM', async () => {
    expect(gateway.pid).toBeGreaterThan(0)
    expect(gateway.rssKb()).toBeGreaterThan(10_000)
    const claims = { sub: DEMO_USERS.bob.id, role: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 }
    const token = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(INBOUND))
    const res = await fetch(`${gateway.url}/rpc/whoami`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    })
    expect(res.status).toBe(200)
    // Bob's app_metadata.role in auth.users is manager: the gateway maps it, the stand-in switches to it.
    expect(await res.json()).toMatchObject({ role: 'manager', uid: DEMO_USERS.bob.id })
    const seen = standIn.requests[standIn.requests.length - 1]!
    expect(seen.authorization).not.toBe(`Bearer ${token}`)
    expect(await gateway.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  })
})
