// End to end, robustness: faults around the gateway under a steady mixed load; it serves what it can, answers the rest with the defined errors, and recovers by itself.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type PostgresServer, startPostgres } from '../../support/postgres.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { generateKeyPairJwk, signHs, signWithKey } from '../../support/tokens.js'

const INBOUND_SECRET = 'inbound-secret-of-the-identity-provider-32+'
const UPSTREAM_SECRET = 'secret-shared-by-gateway-and-postgrest-32+'
const now = () => Math.floor(Date.now() / 1000)

/** The identity provider's asymmetric key, published at the JWKS URL. */
const idp = generateKeyPairJwk('ES256', { kid: 'idp-1' })

function claimsFor(user: { id: string; sessionId: string }): Record<string, unknown> {
  return {
    sub: user.id,
    aud: 'authenticated',
    role: 'authenticated',
    session_id: user.sessionId,
    iat: now(),
    exp: now() + 3600,
  }
}

// --- the stack -----------------------------------------------------------------------------------

let pg: PostgresServer
let db: TestDatabase
let sql: postgres.Sql
let standIn: StandIn
let standInPort: number
let jwks: Server | null = null
let jwksPort = 0
let gateway: GatewayProcess
let agent: Agent

async function startJwks(port: number): Promise<void> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=1' })
    res.end(JSON.stringify({ keys: [idp.publicJwk] }))
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  jwksPort = (server.address() as AddressInfo).port
  jwks = server
}

async function stopJwks(): Promise<void> {
  const server = jwks
  jwks = null
  if (server === null) return
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

async function startStandIn(port: number): Promise<void> {
  standIn = await startPostgrestStandIn({
    dbUrl: db.authenticatorUrl,
    jwtSecret: UPSTREAM_SECRET,
    anonRole: 'anon',
    port,
  })
  standInPort = standIn.port
}

beforeAll(async () => {
  pg = await startPostgres()
  db = await createTestDatabase(pg.url, { schema: 'demo', sql: ['sql/install.sql'] })
  sql = postgres(db.url, { max: 2, onnotice: () => {} })
  await startStandIn(0)
  await startJwks(0)
  gateway = await startGateway({
    env: {
      GATEWAY_UPSTREAM_URL: standIn.url,
      GATEWAY_JWT_SECRET: INBOUND_SECRET,
      GATEWAY_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`,
      GATEWAY_JWKS_COOLDOWN_SECONDS: '1',
      GATEWAY_JWT_AUD: 'authenticated',
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
      GATEWAY_DB_URL: db.url,
      GATEWAY_DB_LOOKUP_TIMEOUT_MS: '1000',
      GATEWAY_ROLES_ALLOWED: 'authenticated,manager,staff',
      GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS: '1000',
      GATEWAY_LOG_LEVEL: 'error',
      GATEWAY_SHUTDOWN_DELAY_MS: '0',
    },
    waitFor: 'ready',
    readyTimeoutMs: 30_000,
  })
  agent = new Agent({ connections: 16, headersTimeout: 10_000, bodyTimeout: 10_000 })
}, 120_000)

afterAll(async () => {
  await agent?.close()
  const exit = gateway === undefined ? null : await gateway.stop()
  await stopJwks()
  await standIn?.close().catch(() => undefined)
  await sql?.end({ timeout: 1 }).catch(() => undefined)
  await pg?.destroy()
  if (exit !== null) expect(exit).toEqual({ code: 0, signal: null })
})

// --- the load ------------------------------------------------------------------------------------

type Kind = 'alice' | 'bob-jwks' | 'anonymous' | 'forged' | 'unknown-user' | 'unknown-kid'
const KINDS: readonly Kind[] = ['alice', 'bob-jwks', 'anonymous', 'forged', 'unknown-user', 'unknown-kid']

/** Per kind, how often each outcome (`200 authenticated`, `503 GW105`, `error ECONNRESET`) occurred. */
type Tally = Map<Kind, Map<string, number>>

const aliceToken = signHs(claimsFor(DEMO_USERS.alice), INBOUND_SECRET)

function authorizationFor(kind: Kind): string | null {
  switch (kind) {
    case 'alice':
      return `Bearer ${aliceToken}`
    case 'bob-jwks':
      // A fresh token each time: verified against the remote key set, not the verified-token cache.
      return `Bearer ${signWithKey({ ...claimsFor(DEMO_USERS.bob), jti: randomUUID() }, idp.privateKey, 'ES256', { kid: 'idp-1' })}`
    case 'anonymous':
      return null
    case 'forged':
      return `Bearer ${signHs(claimsFor(DEMO_USERS.alice), 'not-the-secret-not-the-secret-not-the-secret')}`
    case 'unknown-user':
      return `Bearer ${signHs(claimsFor({ id: randomUUID(), sessionId: randomUUID() }), INBOUND_SECRET)}`
    case 'unknown-kid':
      return `Bearer ${signWithKey(claimsFor(DEMO_USERS.bob), idp.privateKey, 'ES256', { kid: 'idp-unknown' })}`
  }
}

async function send(kind: Kind): Promise<string> {
  const authorization = authorizationFor(kind)
  try {
    const res = await request(`${gateway.url}/__standin/echo`, {
      dispatcher: agent,
      headers: authorization === null ? {} : { authorization },
    })
    const text = await res.body.text()
    if (res.statusCode === 200) {
      const auth = (JSON.parse(text) as { auth: { role?: string; error?: string } }).auth
      return `200 ${auth.role ?? auth.error}`
    }
    let code = '?'
    try {
      code = (JSON.parse(text) as { code: string }).code
    } catch {
      code = 'not-json'
    }
    return `${res.statusCode} ${code}`
  } catch (err) {
    return `error ${(err as { code?: string }).code ?? (err as Error).message}`
  }
}

/** A bounded loop of mixed requests from `workers` concurrent clients until `stop()`. */
function startLoad(workers = 6): { stop(): Promise<Tally>; readonly sent: number } {
  const tally: Tally = new Map(KINDS.map((kind) => [kind, new Map<string, number>()]))
  let running = true
  let sent = 0
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let i = w; running && sent < 100_000; i++) {
      const kind = KINDS[i % KINDS.length]!
      sent++
      const outcome = await send(kind)
      const counts = tally.get(kind)!
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1)
    }
  })
  return {
    get sent() {
      return sent
    },
    async stop() {
      running = false
      await Promise.all(loops)
      return tally
    },
  }
}

/** The outcomes of one kind, as a plain object for a readable failure. */
function outcomes(tally: Tally, kind: Kind): Record<string, number> {
  return Object.fromEntries(tally.get(kind)!)
}

function onlyIn(tally: Tally, kind: Kind, allowed: readonly string[]): void {
  const seen = outcomes(tally, kind)
  expect(Object.keys(seen).length, `${kind}: nothing sent`).toBeGreaterThan(0)
  for (const outcome of Object.keys(seen)) {
    expect(allowed, `${kind}: ${JSON.stringify(seen)}`).toContain(outcome)
  }
}

const HEALTHY: { readonly [K in Kind]: string } = {
  alice: '200 authenticated',
  'bob-jwks': '200 manager',
  anonymous: '200 anon',
  forged: '401 PGRST301',
  'unknown-user': '401 GW101',
  'unknown-kid': '401 PGRST301',
}

/** Waits until one request of each kind gets its healthy answer (the gateway recovered by itself). */
async function recovered(timeoutMs: number): Promise<number> {
  const started = Date.now()
  for (;;) {
    const results = await Promise.all(KINDS.map(async (kind) => [kind, await send(kind)] as const))
    if (results.every(([kind, outcome]) => outcome === HEALTHY[kind])) return Date.now() - started
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `not recovered after ${timeoutMs} ms: ${JSON.stringify(Object.fromEntries(results))}\n${gateway.stdout().slice(-3000)}`,
      )
    }
    await sleep(100)
  }
}

async function underLoad(ms: number, during?: () => Promise<void>): Promise<Tally> {
  const load = startLoad()
  await during?.()
  await sleep(ms)
  return await load.stop()
}

/** Until the admin /ready answers 200 (keys loaded, upstream reachable, database listening). */
async function waitReady(timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await request(`${gateway.adminUrl}/ready`)
    await res.body.text()
    if (res.statusCode === 200) return
    if (Date.now() > deadline) throw new Error(`not ready within ${timeoutMs} ms`)
    await sleep(100)
  }
}

function expectAlive(): void {
  expect(gateway.process.exitCode).toBeNull()
  expect(gateway.process.signalCode).toBeNull()
  // Logs go to stdout; anything on stderr is a crash report or an unhandled rejection.
  expect(gateway.stderr()).toBe('')
}

// --- the faults, in order, on one running gateway -----------------------------------------------

describe('faults under load', () => {
  it('healthy: every kind gets its answer', async () => {
    await recovered(10_000)
    const tally = await underLoad(1000)
    for (const kind of KINDS) onlyIn(tally, kind, [HEALTHY[kind]])
    expectAlive()
  })

  it('the listening connection dropped: still serving, listening again, invalidations arrive again', async () => {
    await waitReady()
    const tally = await underLoad(1500, async () => {
      const killed = await sql<{ pid: number }[]>`
        select pid from pg_stat_activity
        where datname = current_database() and application_name = 'postgrest-gateway listener'`
      expect(killed.length).toBe(1)
      for (const { pid } of killed) await sql`select pg_terminate_backend(${pid})`
    })
    onlyIn(tally, 'alice', ['200 authenticated'])
    onlyIn(tally, 'unknown-user', ['401 GW101'])
    // Listening again: /ready is 200, and a claims change reaches the next request at once.
    await waitReady()
    await send('alice')
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"staff"}' where id = ${DEMO_USERS.alice.id}`
    let outcome = ''
    for (let i = 0; i < 40 && outcome !== '200 staff'; i++) {
      outcome = await send('alice')
      if (outcome !== '200 staff') await sleep(50)
    }
    expect(outcome).toBe('200 staff')
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data - 'role' where id = ${DEMO_USERS.alice.id}`
    await recovered(5_000)
    expectAlive()
  })

  it('the JWKS endpoint down: tokens of known keys still verify, unknown kids are refused; back up: recovers', async () => {
    const tally = await underLoad(2500, () => stopJwks())
    onlyIn(tally, 'bob-jwks', ['200 manager'])
    onlyIn(tally, 'unknown-kid', ['401 PGRST301'])
    onlyIn(tally, 'alice', ['200 authenticated'])
    await startJwks(jwksPort)
    await recovered(10_000)
    expectAlive()
  })

  it('PostgREST down: forwarded requests get 502 GW401, refusals are unchanged; back up: recovers', async () => {
    const tally = await underLoad(2000, () => standIn.close())
    onlyIn(tally, 'alice', ['502 GW401', '200 authenticated'])
    expect(outcomes(tally, 'alice')['502 GW401']).toBeGreaterThan(0)
    onlyIn(tally, 'anonymous', ['502 GW401', '200 anon'])
    onlyIn(tally, 'forged', ['401 PGRST301'])
    onlyIn(tally, 'unknown-user', ['401 GW101'])
    await startStandIn(standInPort)
    await recovered(10_000)
    expectAlive()
  })
  // Regression: a lookup that timed out while its connection was still opening was cancelled inside
  // postgres.js's queue, after which the pool never ran a query again (503 GW105 for good).
  it('PostgreSQL down: cached users and anonymous are served, unknown users get 503 GW105; back up: recovers', async () => {
    await recovered(10_000)
    const tally = await underLoad(2500, () => pg.stop())
    // The stand-in's echo needs no database: whatever the gateway forwards is answered.
    onlyIn(tally, 'alice', ['200 authenticated'])
    onlyIn(tally, 'bob-jwks', ['200 manager'])
    onlyIn(tally, 'anonymous', ['200 anon'])
    onlyIn(tally, 'forged', ['401 PGRST301'])
    // A user seen for the first time cannot be checked: fail closed, never let through.
    onlyIn(tally, 'unknown-user', ['503 GW105', '401 GW101'])
    expect(outcomes(tally, 'unknown-user')['503 GW105']).toBeGreaterThan(0)
    onlyIn(tally, 'unknown-kid', ['401 PGRST301'])
    await pg.start()
    await recovered(20_000)
    await waitReady()
    expectAlive()
  })
})
