// End to end: inbound keys from a JWKS server that starts late, rotates, revokes and goes down, beside a static secret.
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { generateKeyPairJwk, signHs, signWithKey } from '../../support/tokens.js'
import {
  INBOUND,
  type JwksServer,
  readyStatus,
  scrape,
  startJwksServer,
  total,
  UPSTREAM,
  waitUntil,
} from './support.js'

const COOLDOWN_MS = 2000
const keyA = generateKeyPairJwk('ES256', { kid: 'key-a' })
const keyB = generateKeyPairJwk('ES256', { kid: 'key-b' })

/** A new token string each call (a fresh jti), so no verified-token cache answers for it. */
function tokenFor(key: typeof keyA): string {
  const claims = {
    sub: randomUUID(),
    role: 'authenticated',
    jti: randomUUID(),
    exp: Math.floor(Date.now() / 1000) + 600,
  }
  return signWithKey(claims, key.privateKey, 'ES256', { kid: key.publicJwk.kid as string })
}

describe('a gateway process with a rotating JWKS', () => {
  let db: TestDatabase
  let standIn: StandIn
  let jwks: JwksServer
  let gateway: GatewayProcess
  const staticToken = signHs(
    { sub: randomUUID(), role: 'authenticated', exp: Math.floor(Date.now() / 1000) + 600 },
    INBOUND,
  )

  const status = async (token: string) => {
    const res = await fetch(`${gateway.url}/__standin/echo`, {
      headers: { authorization: `Bearer ${token}` },
    })
    await res.arrayBuffer()
    return res.status
  }
  const body = async (token: string) => {
    const res = await fetch(`${gateway.url}/__standin/echo`, {
      headers: { authorization: `Bearer ${token}` },
    })
    return { status: res.status, body: await res.json() }
  }
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    total(await scrape(gateway.adminUrl), name, labels)

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
    })
    jwks = await startJwksServer([keyA.publicJwk], 'max-age=600')
    await jwks.down()
    gateway = await startGateway({
      env: {
        GATEWAY_UPSTREAM_URL: standIn.url,
        GATEWAY_JWKS_URL: jwks.url,
        GATEWAY_JWT_SECRET: INBOUND,
        GATEWAY_JWKS_COOLDOWN_SECONDS: String(COOLDOWN_MS / 1000),
        GATEWAY_JWKS_TIMEOUT_MS: '1000',
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
        GATEWAY_LOG_LEVEL: 'warn',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
      },
      waitFor: 'live',
    })
  })
  afterAll(async () => {
    await gateway?.stop()
    await jwks?.close()
    await standIn?.close()
    await db?.drop()
  })

  test('readiness waits for the first key set; static keys work meanwhile', async () => {
    expect(await readyStatus(gateway.adminUrl)).toMatchObject({ status: 503, body: { failing: ['keys'] } })
    expect(await status(staticToken)).toBe(200)
    expect(await body(tokenFor(keyA))).toEqual({
      status: 503,
      body: { code: 'GW501', details: null, hint: null, message: 'Verification keys are not available yet' },
    })
    expect(await metric('gateway_jwks_fetches_total', { result: 'error' })).toBeGreaterThan(0)
    await jwks.up()
    // A failed fetch is retried after the cooldown.
    await waitUntil('/ready 200', async () => (await readyStatus(gateway.adminUrl)).status === 200, 5000)
    expect(await status(tokenFor(keyA))).toBe(200)
    expect(await metric('gateway_jwks_fetches_total', { result: 'ok' })).toBe(1)
    expect(await metric('gateway_jwks_keys')).toBe(2) // key-a and the static secret
  })

  test('rotation: an unknown kid is refetched, at most once per cooldown; the new key is accepted', async () => {
    const fetches = jwks.fetches
    expect(await status(tokenFor(keyB))).toBe(401) // unknown kid: refetched, still unpublished
    expect(jwks.fetches).toBe(fetches + 1)
    const refetched = Date.now()
    jwks.keys = [keyA.publicJwk, keyB.publicJwk]
    jwks.cacheControl = 'max-age=1'
    expect(await status(tokenFor(keyB))).toBe(401) // within the cooldown: no fetch
    expect(jwks.fetches).toBe(fetches + 1)
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 50 - (Date.now() - refetched)))
    expect(await status(tokenFor(keyB))).toBe(200)
    expect(jwks.fetches).toBe(fetches + 2)
    expect(await metric('gateway_jwks_keys')).toBe(3)
  })

  test('revocation: once the set is refreshed (Cache-Control max-age=1), a removed key is refused, cached tokens too', async () => {
    const cached = tokenFor(keyA)
    expect(await status(cached)).toBe(200)
    expect(await status(cached)).toBe(200) // from the verified-token cache now
    jwks.keys = [keyB.publicJwk]
    await waitUntil('key-a refused', async () => (await status(cached)) === 401, 5000)
    expect(await body(cached)).toEqual({
      status: 401,
      body: {
        code: 'PGRST301',
        details: 'No suitable key was found to decode the JWT',
        hint: null,
        message: 'No suitable key or wrong key type',
      },
    })
    expect(await status(tokenFor(keyB))).toBe(200)
    expect(await metric('gateway_jwks_keys')).toBe(2)
  })

  test('the JWKS server goes down: the last good set is kept, readiness stays', async () => {
    const cachedB = tokenFor(keyB)
    expect(await status(cachedB)).toBe(200)
    const errors = await metric('gateway_jwks_fetches_total', { result: 'error' })
    await jwks.down()
    await waitUntil(
      'a failed refresh',
      async () => (await metric('gateway_jwks_fetches_total', { result: 'error' })) > errors,
    )
    expect(await status(tokenFor(keyB))).toBe(200) // a new token: verified with the kept key
    expect(await status(cachedB)).toBe(200)
    expect(await status(staticToken)).toBe(200)
    expect(await metric('gateway_jwks_keys')).toBe(2)
    expect((await readyStatus(gateway.adminUrl)).status).toBe(200)
  })
})
