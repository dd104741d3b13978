// End to end: SIGHUP reloads the YAML file and secret files of a gateway process without dropping a connection; a broken file is refused.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Agent, request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { signHs } from '../../support/tokens.js'
import { jsonLines, UPSTREAM, waitUntil } from './support.js'

const SECRET_1 = 'first-inbound-secret-of-the-identity-provider'
const SECRET_2 = 'second-inbound-secret-of-the-identity-provider'
const SUB = '0e1f0000-0000-4000-8000-000000000001'

interface Answer {
  status: number
  body: string
  /** The client port of the connection that carried the request. */
  localPort: number
}

describe('SIGHUP reload of a gateway process', () => {
  let db: TestDatabase
  let first: StandIn
  let second: StandIn
  let gateway: GatewayProcess
  let dir: string
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })

  const yaml = (upstream: string, allowed: string, extra = '') =>
    `upstream:\n  url: ${upstream}\nrole:\n  allowed: ${allowed}\n${extra}`
  const writeConfig = (text: string) => writeFileSync(join(dir, 'gateway.yaml'), text)
  const writeSecret = (secret: string) => writeFileSync(join(dir, 'inbound.secret'), `${secret}\n`)

  const token = (secret: string, role: string | null) =>
    signHs(
      {
        sub: SUB,
        role: 'authenticated',
        app_metadata: role === null ? {} : { role },
        exp: Math.floor(Date.now() / 1000) + 600,
      },
      secret,
    )

  /** A request on the one keep-alive connection of `agent` (or a connection of its own). */
  const send = (path: string, bearer: string | null, keepAlive = true): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = httpRequest(
        `${gateway.url}${path}`,
        {
          agent: keepAlive ? agent : false,
          headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` },
        },
        (res) => {
          const localPort = res.socket.localPort!
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            body += chunk
          })
          res.on('end', () => resolve({ status: res.statusCode!, body, localPort }))
        },
      )
      req.on('error', reject)
      req.end()
    })

  const roleOf = (answer: Answer) => (JSON.parse(answer.body) as { auth: { role: string } }).auth.role

  /** Sends SIGHUP and waits for the log line that says what became of it. */
  const reload = async (): Promise<Record<string, unknown>> => {
    const seen = jsonLines(gateway.stdout()).length
    gateway.process.kill('SIGHUP')
    const isOutcome = (l: Record<string, unknown>) =>
      typeof l['msg'] === 'string' && l['msg'].startsWith('configuration reload')
    await waitUntil('the reload outcome', () => jsonLines(gateway.stdout()).slice(seen).some(isOutcome))
    const lines = jsonLines(gateway.stdout()).slice(seen)
    const at = lines.findIndex(isOutcome)
    // Whatever else the reload logged beside its outcome (access lines aside): a refusal is one line.
    const others = lines.filter((l, i) => i !== at && l['msg'] !== 'request')
    return { ...lines[at]!, others }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gateway-reload-'))
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    first = await startPostgrestStandIn({ dbUrl: db.authenticatorUrl, jwtSecret: UPSTREAM, anonRole: 'anon' })
    second = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM,
      anonRole: 'anon',
    })
    writeConfig(yaml(first.url, 'authenticated'))
    writeSecret(SECRET_1)
    gateway = await startGateway({
      env: {
        GATEWAY_CONFIG: join(dir, 'gateway.yaml'),
        GATEWAY_JWT_SECRET_FILE: join(dir, 'inbound.secret'),
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
        GATEWAY_LOG_LEVEL: 'info',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
      },
      waitFor: 'ready',
    })
  })
  afterAll(async () => {
    agent.destroy()
    await gateway?.stop()
    await first?.close()
    await second?.close()
    await db?.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('new allow-list, inbound secret and upstream apply; a keep-alive connection and a running request survive', async () => {
    const before = await send('/__standin/echo', token(SECRET_1, null))
    expect(before.status).toBe(200)
    expect(roleOf(before)).toBe('authenticated')
    expect((await send('/__standin/echo', token(SECRET_1, 'manager'))).status).toBe(403)

    const running = send('/__standin/slow?ms=1200', null, false)
    await waitUntil('the slow request upstream', () =>
      first.requests.some((r) => r.path === '/__standin/slow'),
    )
    writeConfig(yaml(second.url, 'authenticated,manager'))
    writeSecret(SECRET_2)
    const outcome = await reload()
    expect(outcome).toMatchObject({ level: 30, msg: 'configuration reloaded', others: [] })

    const after = await send('/__standin/echo', token(SECRET_2, 'manager'))
    expect(after.localPort).toBe(before.localPort) // the same connection, opened before the reload
    expect(after.status).toBe(200)
    expect(roleOf(after)).toBe('manager')
    expect(second.requests.at(-1)?.path).toBe('/__standin/echo') // the new upstream
    const old = await send('/__standin/echo', token(SECRET_1, null))
    expect(old.status).toBe(401)
    expect(old.localPort).toBe(before.localPort)
    // Started on the old stages, finished on them, against the old upstream.
    expect(await running).toMatchObject({ status: 200, body: '{"sleptMs":1200}' })
  })

  test('a broken file is refused with one error line naming the option; the running configuration stays', async () => {
    const before = await send('/__standin/echo', token(SECRET_2, 'manager'))
    expect(before.status).toBe(200)

    writeConfig(yaml(second.url, 'authenticated,manager,service_role'))
    const privileged = await reload()
    expect(privileged).toMatchObject({
      level: 50,
      msg: 'configuration reload refused; the running configuration stays',
      others: [],
    })
    expect(privileged['reason']).toContain('GATEWAY_ROLES_ALLOWED')

    writeConfig(yaml(second.url, 'authenticated,manager', 'role:\n  alowed: x\n'))
    const syntax = await reload()
    expect(syntax).toMatchObject({ level: 50, others: [] })
    expect(String(syntax['reason'])).toMatch(/gateway\.yaml/)

    writeConfig(yaml(second.url, 'authenticated,manager'))
    writeSecret('too-short')
    const secret = await reload()
    expect(secret).toMatchObject({ level: 50, others: [] })
    expect(secret['reason']).toContain('GATEWAY_JWT_SECRET')
    expect(secret['reason']).not.toContain('too-short')

    writeSecret(SECRET_2)
    writeConfig(yaml(second.url, 'authenticated,manager', 'log:\n  pretty: true\n'))
    const pretty = await reload()
    expect(pretty).toMatchObject({
      level: 50,
      reason: 'log.pretty (GATEWAY_LOG_PRETTY) cannot change without a restart',
      others: [],
    })

    const after = await send('/__standin/echo', token(SECRET_2, 'manager'))
    expect(after.status).toBe(200)
    expect(roleOf(after)).toBe('manager')
    expect(after.localPort).toBe(before.localPort)
    expect((await fetch(`${gateway.adminUrl}/ready`)).status).toBe(200)
  })

  test('the process still shuts down cleanly after reloads', async () => {
    agent.destroy()
    expect(await gateway.stop('SIGTERM')).toEqual({ code: 0, signal: null })
  })
})
