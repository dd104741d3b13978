// Admin listener: /live, /ready (checks by name, 503 while shutting down), /metrics, and nothing else.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createAdminServer, type ReadinessCheck } from '../../../src/observability/admin-server.js'
import { createMetrics } from '../../../src/observability/metrics.js'

const JSON_TYPE = 'application/json; charset=utf-8'

interface Running {
  url: string
  close(): Promise<void>
}

const started: Running[] = []

async function start(options: {
  checks?: () => readonly ReadinessCheck[]
  shuttingDown?: () => boolean
  metrics?: ReturnType<typeof createMetrics>
}): Promise<Running> {
  const { server } = createAdminServer({
    metrics: options.metrics ?? createMetrics({ defaultMetrics: false }),
    checks: options.checks ?? (() => []),
    isShuttingDown: options.shuttingDown ?? (() => false),
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const running = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
  started.push(running)
  return running
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()))
})

async function get(url: string, method = 'GET') {
  const res = await fetch(url, { method })
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() }
}

const passing = (name: string): ReadinessCheck => ({ name, check: () => true })

describe('admin server', () => {
  it('answers /live with 200 whatever the checks say', async () => {
    const admin = await start({ checks: () => [{ name: 'upstream', check: () => false }] })
    expect(await get(`${admin.url}/live`)).toEqual({
      status: 200,
      type: JSON_TYPE,
      body: '{"status":"live"}',
    })
    expect((await get(`${admin.url}/live`, 'HEAD')).status).toBe(200)
  })

  it('answers /ready with 200 and every check when all pass', async () => {
    const admin = await start({
      checks: () => [passing('keys'), { name: 'upstream', check: async () => true }],
    })
    expect(await get(`${admin.url}/ready`)).toEqual({
      status: 200,
      type: JSON_TYPE,
      body: '{"status":"ready","failing":[],"checks":{"shutdown":true,"keys":true,"upstream":true}}',
    })
  })

  it('answers /ready with 503 naming the failing checks; a throwing or rejecting check fails', async () => {
    const admin = await start({
      checks: () => [
        passing('keys'),
        { name: 'upstream', check: async () => false },
        {
          name: 'database',
          check: () => {
            throw new Error('boom')
          },
        },
        { name: 'other', check: () => Promise.reject(new Error('boom')) },
      ],
    })
    expect(await get(`${admin.url}/ready`)).toEqual({
      status: 503,
      type: JSON_TYPE,
      body: '{"status":"not ready","failing":["upstream","database","other"],"checks":{"shutdown":true,"keys":true,"upstream":false,"database":false,"other":false}}',
    })
  })

  it('answers /ready with 503 naming shutdown from the first moment of a shutdown', async () => {
    let stopping = false
    const admin = await start({ checks: () => [passing('keys')], shuttingDown: () => stopping })
    expect((await get(`${admin.url}/ready`)).status).toBe(200)
    stopping = true
    expect(await get(`${admin.url}/ready`)).toEqual({
      status: 503,
      type: JSON_TYPE,
      body: '{"status":"not ready","failing":["shutdown"],"checks":{"shutdown":false,"keys":true}}',
    })
  })

  it('asks for the list of checks on every probe (a reload may add or drop one)', async () => {
    let checks: ReadinessCheck[] = [passing('keys')]
    const admin = await start({ checks: () => checks })
    expect(JSON.parse((await get(`${admin.url}/ready`)).body).checks).toEqual({ shutdown: true, keys: true })
    checks = [passing('keys'), { name: 'database', check: () => false }]
    expect(await get(`${admin.url}/ready`)).toMatchObject({ status: 503 })
    expect(JSON.parse((await get(`${admin.url}/ready`)).body).failing).toEqual(['database'])
  })

  it('serves /metrics in Prometheus text, after running the collect hooks', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    let pending = 0
    metrics.onCollect(() => {
      metrics.verifyCache.labels('hit').inc(pending)
      pending = 0
    })
    const admin = await start({ metrics })
    pending = 7
    const res = await get(`${admin.url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.type).toBe(metrics.registry.contentType)
    expect(res.body).toContain('# TYPE gateway_requests_total counter')
    expect(res.body).toContain('gateway_jwt_cache_total{event="hit"} 7')
  })

  it('answers 404 with a JSON body for any other path, and 405 for other methods', async () => {
    const admin = await start({})
    for (const path of ['/', '/config', '/live/', '/metrics/x', '/ready.json']) {
      expect(await get(`${admin.url}${path}`), path).toEqual({
        status: 404,
        type: JSON_TYPE,
        body: '{"status":"not found"}',
      })
    }
    const res = await fetch(`${admin.url}/metrics`, { method: 'POST', body: 'x' })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, HEAD')
    expect(await res.text()).toBe('{"status":"method not allowed"}')
  })

  it('ignores a query string when routing', async () => {
    const admin = await start({})
    expect((await get(`${admin.url}/live?verbose=1`)).status).toBe(200)
  })
})
