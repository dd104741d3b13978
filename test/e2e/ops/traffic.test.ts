// End to end: the built gateway's /metrics series move with traffic, labels stay in closed sets, logs never carry a secret, /ready follows the upstream.
import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createMetrics, VERIFY_OUTCOMES } from '../../../src/observability/metrics.js'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { signHs } from '../../support/tokens.js'
import {
  INBOUND,
  jsonLines,
  readyStatus,
  type Series,
  scrape,
  total,
  UPSTREAM,
  waitUntil,
} from './support.js'

const marker = (what: string) => `leak-marker-${what}-${randomBytes(6).toString('hex')}`
const MARKERS = {
  email: `${marker('email')}@x`,
  appMeta: marker('app'),
  userMeta: marker('user'),
  dbMeta: marker('db'),
  role: marker('role'),
  cookie: marker('cookie'),
  apikey: marker('apikey'),
  query: marker('query'),
  header: marker('header'),
}

const now = () => Math.floor(Date.now() / 1000)

// The closed label sets (docs/operations.md): anything else in a gateway_* series is a leak.
const CLOSED: Record<string, ReadonlySet<string>> = {
  method: new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER']),
  status_class: new Set(['1xx', '2xx', '3xx', '4xx', '5xx']),
  outcome: new Set(VERIFY_OUTCOMES),
  event: new Set(['hit', 'miss', 'stale', 'signed', 'reused']),
  result: new Set(['found', 'not_found', 'timeout', 'error', 'ok', 'rejected', 'invalid']),
  kind: new Set([
    'connect',
    'timeout',
    'reset',
    'other',
    'user',
    'session',
    'all',
    'disconnect',
    'reconnect',
  ]),
}
const OWN_METRICS = new Set(
  createMetrics({ defaultMetrics: false })
    .registry.getMetricsAsArray()
    .map((m) => m.name),
)

function ownName(series: Series): string | null {
  for (const suffix of ['', '_bucket', '_sum', '_count']) {
    const base = suffix === '' ? series.name : series.name.slice(0, -suffix.length)
    if (series.name.endsWith(suffix) && OWN_METRICS.has(base)) return base
  }
  return null
}

describe('a gateway process under traffic', () => {
  let db: TestDatabase
  let standIn: StandIn
  let gateway: GatewayProcess
  const bob = signHs(
    {
      sub: DEMO_USERS.bob.id,
      role: 'authenticated',
      email: MARKERS.email,
      app_metadata: { plan: MARKERS.appMeta },
      user_metadata: { name: MARKERS.userMeta },
      exp: now() + 600,
    },
    INBOUND,
  )
  const expired = signHs({ sub: DEMO_USERS.bob.id, email: MARKERS.email, exp: now() - 3600 }, INBOUND)
  const forged = signHs(
    { sub: DEMO_USERS.bob.id, email: MARKERS.email, exp: now() + 600 },
    `${INBOUND}-not-it`,
  )
  const carol = signHs({ sub: DEMO_USERS.carol.id, email: MARKERS.email, exp: now() + 600 }, INBOUND)
  const secrets = [bob, expired, forged, carol]

  const send = (path: string, token: string | null, init: RequestInit = {}) =>
    fetch(`${gateway.url}${path}`, {
      ...init,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        cookie: `session=${MARKERS.cookie}`,
        apikey: MARKERS.apikey,
        'x-marker': MARKERS.header,
        ...(init.headers as Record<string, string> | undefined),
      },
    })

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo', sql: ['sql/install.sql'] })
    const sql = postgres(db.url, { max: 1, onnotice: () => {} })
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || ${sql.json({ secret: MARKERS.dbMeta })} where id = ${DEMO_USERS.bob.id}`
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || ${sql.json({ role: MARKERS.role })} where id = ${DEMO_USERS.carol.id}`
    await sql.end()
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
        GATEWAY_LOG_LEVEL: 'trace',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
        GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS: '1000',
      },
      waitFor: 'ready',
    })
  })
  afterAll(async () => {
    await gateway?.stop()
    await standIn?.close()
    await db?.drop()
  })

  test('requests, durations, verification outcomes, caches and minted tokens move the right series', async () => {
    const before = await scrape(gateway.adminUrl)
    const delta = (after: Series[], name: string, labels: Record<string, string> = {}) =>
      total(after, name, labels) - total(before, name, labels)

    const first = await send(`/__standin/echo?email=eq.${MARKERS.query}`, bob, {
      headers: { 'x-request-id': 'ops-first' },
    })
    expect(first.status).toBe(200)
    const echoed = (await first.json()) as {
      url: string
      headers: Record<string, string[]>
      auth: { role: string }
    }
    expect(echoed.auth.role).toBe('manager')
    // The markers did pass through the gateway (so the log search below means something).
    expect(echoed.headers['cookie']).toEqual([`session=${MARKERS.cookie}`])
    expect(echoed.headers['apikey']).toEqual([MARKERS.apikey])
    expect(echoed.url).toBe(`/__standin/echo?email=eq.${MARKERS.query}`)
    const second = await send('/__standin/echo', bob)
    expect(second.status).toBe(200)
    await second.arrayBuffer()
    expect((await send('/__standin/echo', expired)).status).toBe(401)
    expect((await send('/__standin/echo', forged)).status).toBe(401)
    expect((await send('/__standin/echo', carol)).status).toBe(403)
    expect((await send('/__standin/status?code=500', null, { method: 'POST' })).status).toBe(500)
    expect((await send('/__standin/echo', null, { method: 'PROPFIND' })).status).toBe(200)

    const after = await scrape(gateway.adminUrl)
    expect(delta(after, 'gateway_requests_total', { method: 'GET', status_class: '2xx' })).toBe(2)
    expect(delta(after, 'gateway_requests_total', { method: 'GET', status_class: '4xx' })).toBe(3)
    expect(delta(after, 'gateway_requests_total', { method: 'POST', status_class: '5xx' })).toBe(1)
    expect(delta(after, 'gateway_requests_total', { method: 'OTHER', status_class: '2xx' })).toBe(1)
    expect(delta(after, 'gateway_request_duration_seconds_count', { method: 'GET' })).toBe(5)
    expect(delta(after, 'gateway_request_duration_seconds_count')).toBe(7)
    expect(delta(after, 'gateway_jwt_verifications_total', { outcome: 'ok' })).toBe(2) // bob, carol
    expect(delta(after, 'gateway_jwt_verifications_total', { outcome: 'expired' })).toBe(1)
    expect(delta(after, 'gateway_jwt_verifications_total', { outcome: 'signature' })).toBe(1)
    // Batched in the verifier and flushed when scraped: bob's second request is a hit at once.
    expect(delta(after, 'gateway_jwt_cache_total', { event: 'hit' })).toBe(1)
    expect(delta(after, 'gateway_jwt_cache_total', { event: 'miss' })).toBe(4)
    expect(delta(after, 'gateway_claims_cache_total', { event: 'miss' })).toBe(2) // bob, carol
    expect(delta(after, 'gateway_claims_cache_total', { event: 'hit' })).toBe(1) // bob again
    expect(delta(after, 'gateway_claims_lookups_total', { result: 'found' })).toBe(2)
    expect(delta(after, 'gateway_minted_tokens_total', { event: 'signed' })).toBe(1)
    expect(delta(after, 'gateway_minted_tokens_total', { event: 'reused' })).toBe(1)
    expect(delta(after, 'gateway_role_refusals_total')).toBe(1)
    expect(total(after, 'gateway_jwks_keys')).toBe(1) // the static HS256 secret
    expect(total(after, 'gateway_claims_listener_connected')).toBe(1)
    expect(total(after, 'gateway_requests_in_flight')).toBe(0)
    for (const name of [
      'gateway_process_cpu_seconds_total',
      'gateway_process_resident_memory_bytes',
      'gateway_nodejs_heap_size_used_bytes',
      'gateway_nodejs_eventloop_lag_p99_seconds',
    ]) {
      expect(
        after.some((s) => s.name === name),
        name,
      ).toBe(true)
    }
  })

  test('one access line per request with the fixed fields, path without its query string', async () => {
    // The line is written after the response: the child's stdout may lag behind the answer.
    const access = () =>
      jsonLines(gateway.stdout()).filter((l) => l['msg'] === 'request' || l['msg'] === 'request failed')
    await waitUntil('seven access lines', () => access().length >= 7)
    expect(access()).toHaveLength(7)
    const lines = access().filter((l) => l['reqId'] === 'ops-first')
    expect(lines).toHaveLength(1)
    const line = lines[0]!
    expect(line).toMatchObject({
      level: 30,
      msg: 'request',
      method: 'GET',
      path: '/__standin/echo',
      status: 200,
      role: 'manager',
      reqId: 'ops-first',
      code: null,
    })
    expect(typeof line['durationMs']).toBe('number')
    expect(typeof line['upstreamMs']).toBe('number')
    const refused = access().filter((l) => l['status'] === 401)
    expect(refused.map((l) => [l['level'], l['code'], l['role']])).toEqual([
      [30, 'PGRST303', null],
      [30, 'PGRST301', null],
    ])
  })

  test('the in-flight gauge counts a slow request while it runs', async () => {
    const slow = fetch(`${gateway.url}/__standin/slow?ms=600`)
    await waitUntil(
      'the slow request in flight',
      async () => total(await scrape(gateway.adminUrl), 'gateway_requests_in_flight') === 1,
    )
    expect((await slow).status).toBe(200)
    expect(total(await scrape(gateway.adminUrl), 'gateway_requests_in_flight')).toBe(0)
  })

  test('upstream down: 502 counted by kind, /ready 503 naming upstream; back: /ready 200', async () => {
    const port = standIn.port
    const before = total(await scrape(gateway.adminUrl), 'gateway_upstream_errors_total', { kind: 'connect' })
    await standIn.close()
    const down = await send('/__standin/echo', bob)
    expect(down.status).toBe(502)
    await down.arrayBuffer()
    const after = await scrape(gateway.adminUrl)
    expect(total(after, 'gateway_upstream_errors_total', { kind: 'connect' }) - before).toBe(1)
    await waitUntil('/ready 503', async () => (await readyStatus(gateway.adminUrl)).status === 503)
    expect(await readyStatus(gateway.adminUrl)).toEqual({
      status: 503,
      body: {
        status: 'not ready',
        failing: ['upstream'],
        checks: { shutdown: true, keys: true, upstream: false, database: true },
      },
    })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
      port,
    })
    await waitUntil('/ready 200', async () => (await readyStatus(gateway.adminUrl)).status === 200)
    expect((await send('/__standin/echo', bob)).status).toBe(200)
  })

  test('every gateway_* label value comes from a closed set; none carries a user id, role name or path', async () => {
    const series = await scrape(gateway.adminUrl)
    const forbidden = [
      ...Object.values(MARKERS),
      DEMO_USERS.bob.id,
      DEMO_USERS.carol.id,
      'manager',
      'authenticated',
    ]
    for (const s of series) {
      expect(s.name.startsWith('gateway_'), s.name).toBe(true)
      for (const [label, value] of Object.entries(s.labels)) {
        for (const bad of forbidden) expect(value, `${s.name}{${label}}`).not.toContain(bad)
        expect(value, `${s.name}{${label}}`).not.toContain('/')
        if (ownName(s) === null) continue
        if (label === 'le')
          expect(value === '+Inf' || Number.isFinite(Number(value)), `${s.name} le=${value}`).toBe(true)
        else expect(CLOSED[label]?.has(value), `${s.name}{${label}="${value}"}`).toBe(true)
      }
    }
  })

  test('no token, cookie, apikey, claim value or query string reaches stdout or stderr', async () => {
    await gateway.stop('SIGTERM')
    const output = gateway.stdout() + gateway.stderr()
    expect(jsonLines(output).length).toBeGreaterThan(10) // trace level: there is output to search
    for (const value of [...Object.values(MARKERS), ...secrets, ...secrets.map((t) => t.split('.')[2]!)]) {
      expect(output).not.toContain(value)
    }
  })
})
