// End to end: graceful shutdown of the gateway process on SIGTERM/SIGINT (not ready, delay, drain, exit 0) and the second signal.
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { INBOUND, jsonLines, readyStatus, scrape, total, UPSTREAM, waitUntil } from './support.js'

/** A request on a connection of its own (no pooling), so "new connection refused" is observable. */
function get(url: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode!, body, connection: res.headers.connection }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The exit of a process already signalled (stop() would send one more signal). */
async function exited(gw: GatewayProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = gw.process
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit')
  return { code: child.exitCode, signal: child.signalCode }
}

describe('shutdown of a gateway process', () => {
  let db: TestDatabase
  let standIn: StandIn
  let gateway: GatewayProcess | null = null

  const start = (env: Record<string, string>) =>
    startGateway({
      env: {
        GATEWAY_UPSTREAM_URL: standIn.url,
        GATEWAY_JWT_SECRET: INBOUND,
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
        GATEWAY_DB_URL: db.url,
        GATEWAY_LOG_LEVEL: 'info',
        ...env,
      },
      waitFor: 'ready',
    })

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo', sql: ['sql/install.sql'] })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
    })
  })
  afterEach(async () => {
    await gateway?.stop('SIGKILL')
    gateway = null
  })
  afterAll(async () => {
    await standIn?.close()
    await db?.drop()
  })

  test('SIGTERM: /ready 503 at once, serves during the delay, refuses after it, finishes the slow request, exits 0', async () => {
    const gw = await start({ GATEWAY_SHUTDOWN_DELAY_MS: '600', GATEWAY_SHUTDOWN_DEADLINE_MS: '5000' })
    gateway = gw
    const slow = get(`${gw.url}/__standin/slow?ms=1500`)
    await waitUntil(
      'the slow request in flight',
      async () => total(await scrape(gw.adminUrl), 'gateway_requests_in_flight') === 1,
    )
    const signalled = Date.now()
    gw.process.kill('SIGTERM')
    await waitUntil('/ready 503', async () => (await readyStatus(gw.adminUrl)).status === 503, 300)
    expect(await readyStatus(gw.adminUrl)).toEqual({
      status: 503,
      body: {
        status: 'not ready',
        failing: ['shutdown'],
        checks: { shutdown: false, keys: true, upstream: true, database: true },
      },
    })
    // Within the delay: still served on a new connection, which is asked to close.
    const during = await get(`${gw.url}/__standin/echo`)
    expect(Date.now() - signalled).toBeLessThan(600)
    expect(during.status).toBe(200)
    expect(during.connection).toBe('close')
    // After the delay: the listener is closed, new connections are refused.
    await new Promise((resolve) => setTimeout(resolve, 800 - (Date.now() - signalled)))
    await expect(get(`${gw.url}/__standin/echo`)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    expect(await slow).toEqual({ status: 200, body: '{"sleptMs":1500}', connection: 'close' })
    expect(await exited(gw)).toEqual({ code: 0, signal: null })
    const messages = jsonLines(gw.stdout()).map((l) => l['msg'])
    expect(messages).toContain('shutting down: not ready, still serving')
    expect(messages).toContain('shutdown complete')
    expect(messages).not.toContain('shutdown deadline reached')
  })

  test('SIGINT is graceful too: exits 0', async () => {
    const gw = await start({ GATEWAY_SHUTDOWN_DELAY_MS: '0' })
    gateway = gw
    expect(await gw.stop('SIGINT', 10_000)).toEqual({ code: 0, signal: null })
    expect(jsonLines(gw.stdout()).map((l) => l['msg'])).toContain('shutdown complete')
  })

  test('the deadline cuts a request that runs longer, and the process still exits 0', async () => {
    const gw = await start({ GATEWAY_SHUTDOWN_DELAY_MS: '0', GATEWAY_SHUTDOWN_DEADLINE_MS: '300' })
    gateway = gw
    const slow = get(`${gw.url}/__standin/slow?ms=5000`).then(
      (res) => res.status,
      (err: NodeJS.ErrnoException) => err.code,
    )
    await waitUntil(
      'the slow request in flight',
      async () => total(await scrape(gw.adminUrl), 'gateway_requests_in_flight') === 1,
    )
    const signalled = Date.now()
    expect(await gw.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null })
    expect(Date.now() - signalled).toBeLessThan(3000)
    expect(await slow).toBe('ECONNRESET')
    expect(jsonLines(gw.stdout()).map((l) => l['msg'])).toContain('shutdown deadline reached')
  })

  test('a second signal exits at once with code 1, cutting the in-flight request', async () => {
    const gw = await start({ GATEWAY_SHUTDOWN_DELAY_MS: '5000', GATEWAY_SHUTDOWN_DEADLINE_MS: '20000' })
    gateway = gw
    const slow = get(`${gw.url}/__standin/slow?ms=5000`).then(
      (res) => res.status,
      (err: NodeJS.ErrnoException) => err.code,
    )
    await waitUntil(
      'the slow request in flight',
      async () => total(await scrape(gw.adminUrl), 'gateway_requests_in_flight') === 1,
    )
    gw.process.kill('SIGINT')
    await waitUntil('/ready 503', async () => (await readyStatus(gw.adminUrl)).status === 503, 1000)
    const second = Date.now()
    expect(await gw.stop('SIGTERM', 10_000)).toEqual({ code: 1, signal: null })
    expect(Date.now() - second).toBeLessThan(1000)
    expect(await slow).toBe('ECONNRESET')
    expect(jsonLines(gw.stdout()).map((l) => l['msg'])).toContain('second signal: exiting now')
  })
})
