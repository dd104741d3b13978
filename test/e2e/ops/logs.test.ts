// End to end: log levels (and a level changed by SIGHUP) and the readable GATEWAY_LOG_PRETTY form of a gateway process.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { INBOUND, jsonLines, UPSTREAM, waitUntil } from './support.js'

describe('gateway process logs', () => {
  let db: TestDatabase
  let standIn: StandIn
  let dir: string
  const running: GatewayProcess[] = []

  const start = async (env: Record<string, string>) => {
    const gateway = await startGateway({
      env: {
        GATEWAY_UPSTREAM_URL: standIn.url,
        GATEWAY_JWT_SECRET: INBOUND,
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
        ...env,
      },
    })
    running.push(gateway)
    return gateway
  }
  const get = async (gateway: GatewayProcess, path: string, requestId: string) => {
    const res = await fetch(`${gateway.url}${path}`, { headers: { 'x-request-id': requestId } })
    await res.arrayBuffer()
    return res.status
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gateway-logs-'))
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
    })
  })
  afterAll(async () => {
    await Promise.all(running.map((g) => g.stop('SIGKILL')))
    await standIn?.close()
    await db?.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('at warn, access lines are not written; SIGHUP to info turns them on', async () => {
    const config = join(dir, 'levels.yaml')
    writeFileSync(config, 'log:\n  level: warn\n')
    const gateway = await start({ GATEWAY_CONFIG: config })
    expect(await get(gateway, '/__standin/echo', 'quiet-request')).toBe(200)
    expect(await get(gateway, '/__standin/status?code=503', 'quiet-failure')).toBe(503)
    writeFileSync(config, 'log:\n  level: info\n')
    gateway.process.kill('SIGHUP')
    await waitUntil('the reload', () =>
      jsonLines(gateway.stdout()).some((l) => l['msg'] === 'configuration reloaded'),
    )
    expect(await get(gateway, '/__standin/echo', 'loud-request')).toBe(200)
    await waitUntil('the access line', () =>
      jsonLines(gateway.stdout()).some((l) => l['reqId'] === 'loud-request'),
    )
    expect(await gateway.stop()).toEqual({ code: 0, signal: null })
    const ids = jsonLines(gateway.stdout()).map((l) => l['reqId'])
    expect(ids).not.toContain('quiet-request')
    expect(ids).not.toContain('quiet-failure') // an upstream 503 is the upstream's answer, not a gateway failure
    expect(ids).toContain('loud-request')
  })

  test('GATEWAY_LOG_PRETTY=true writes readable lines instead of JSON', async () => {
    const gateway = await start({ GATEWAY_LOG_PRETTY: 'true', GATEWAY_LOG_LEVEL: 'info' })
    expect(await get(gateway, '/__standin/echo?x=1', 'pretty-request')).toBe(200)
    await waitUntil('the access line', () => gateway.stdout().includes('pretty-request'))
    expect(await gateway.stop()).toEqual({ code: 0, signal: null })
    const out = gateway.stdout()
    expect(jsonLines(out)).toEqual([])
    expect(out).toMatch(/^\[\d\d:\d\d:\d\d\.\d\d\d\] INFO: request$/m)
    expect(out).toContain('reqId: "pretty-request"')
    expect(out).toContain('path: "/__standin/echo"')
    expect(out).toContain('INFO: gateway listening')
  })
})
