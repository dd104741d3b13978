// Integration: Postgres-function hooks (Supabase's documented examples and broken ones) on a real PostgreSQL.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { pino } from 'pino'
import postgres from 'postgres'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Claims, VerifiedToken } from '../../../src/auth/types.js'
import { errorResponse, GatewayError } from '../../../src/errors/index.js'
import { createHook, type Hook } from '../../../src/hook/index.js'
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js'
import type { CurrentUser } from '../../../src/role/map-role.js'

const HOOKS_SQL = readFileSync(new URL('./hooks.sql', import.meta.url), 'utf8')

let release: () => Promise<void> = async () => {}
let adminUrl: string
let dbName: string
let dbUrl: string
let sql: postgres.Sql
const hooks: Hook[] = []
let logLines: string[] = []
let metrics: Metrics

/** The shared test server when the run provides one, else a cluster of this file's own. */
async function testServer(): Promise<{ adminUrl: string; release(): Promise<void> }> {
  const { inject } = await import('vitest')
  const shared = (inject as (key: string) => unknown)('pgAdminUrl')
  if (typeof shared === 'string') return { adminUrl: shared, release: async () => {} }
  const { startPostgres } = await import('../../support/postgres.js')
  const server = await startPostgres()
  return { adminUrl: server.url, release: () => server.destroy() }
}

beforeAll(async () => {
  const server = await testServer()
  release = server.release
  adminUrl = server.adminUrl
  dbName = `hook_${randomUUID().replaceAll('-', '')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${dbName}`)
  await admin.end()
  const url = new URL(adminUrl)
  url.pathname = `/${dbName}`
  dbUrl = url.toString()
  sql = postgres(dbUrl, { max: 2, onnotice: () => {} })
  await sql.unsafe(HOOKS_SQL)
})

afterEach(async () => {
  await Promise.all(hooks.splice(0).map((hook) => hook.close()))
})

afterAll(async () => {
  await sql?.end({ timeout: 1 })
  if (dbName !== undefined) {
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
    await admin.unsafe(`drop database if exists ${dbName} with (force)`)
    await admin.end()
  }
  await release()
})

function pgHook(fn: string, timeoutMs = 2000, maxResponseBytes = 65536): Hook {
  logLines = []
  metrics = createMetrics({ defaultMetrics: false })
  const hook = createHook({
    config: { uri: `pg-functions://postgres/hooks/${fn}`, secrets: [], timeoutMs, maxResponseBytes },
    dbUrl,
    metrics,
    logger: pino({ level: 'info' }, { write: (line: string) => logLines.push(line) }),
  })
  if (hook === null) throw new Error('expected a hook')
  hooks.push(hook)
  return hook
}

function claimsOf(sub: string, email: string): Claims {
  return {
    aud: 'authenticated',
    exp: 2_000_000_000,
    iat: 1_700_000_000,
    iss: 'https://project.supabase.co/auth/v1',
    sub,
    email,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: { avatar_url: 'https://cdn.example.com/a.png', full_name: 'Dana Example' },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: 1_700_000_000 }],
    session_id: randomUUID(),
    is_anonymous: false,
  }
}

function verified(email = 'dana@example.com'): VerifiedToken {
  const sub = randomUUID()
  const claims = claimsOf(sub, email)
  return {
    token: `token-${sub}`,
    claims,
    exp: 2_000_000_000,
    nbf: null,
    iat: 1_700_000_000,
    sub,
    sessionId: claims['session_id'] as string,
    role: 'authenticated',
    kid: null,
    alg: 'HS256',
  }
}

const fresh = (appMetadata: Record<string, unknown> = { provider: 'email', plan: 'pro' }): CurrentUser => ({
  appMetadata,
  role: null,
})

async function failure(run: () => unknown): Promise<GatewayError> {
  try {
    await run()
  } catch (err) {
    if (err instanceof GatewayError) return err
    throw err
  }
  throw new Error('expected a GatewayError')
}

async function calls(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const value of (await metrics.hookCalls.get()).values) {
    if (value.value > 0) out[String(value.labels['result'])] = value.value
  }
  return out
}

describe("Supabase's documented hooks", () => {
  it('minimal JWT: only the listed claims remain', async () => {
    const token = verified()
    const out = await pgHook('minimal_jwt').run(token, fresh())
    const c = token.claims
    expect(out).toEqual({
      iss: c['iss'],
      aud: c['aud'],
      exp: c['exp'],
      iat: c['iat'],
      sub: c['sub'],
      role: 'authenticated',
      aal: 'aal1',
      session_id: c['session_id'],
      email: 'dana@example.com',
      phone: '',
      is_anonymous: false,
    })
    expect(await calls()).toEqual({ ok: 1 })
  })

  it('add admin role: the flag comes from a table, on the fresh app_metadata', async () => {
    const hook = pgHook('add_admin')
    const admin = verified()
    const other = verified()
    await sql`insert into hooks.profiles (user_id, is_admin) values (${admin.sub}::uuid, true), (${other.sub}::uuid, false)`
    const adminOut = await hook.run(admin, fresh())
    expect(adminOut['app_metadata']).toEqual({ provider: 'email', plan: 'pro', admin: true })
    const otherOut = await hook.run(other, fresh())
    expect(otherOut).toEqual({ ...other.claims, app_metadata: { provider: 'email', plan: 'pro' } })
  })

  it('add claim: the role follows app_metadata.role as it is now, not as it was at sign-in', async () => {
    const hook = pgHook('role_from_app_metadata')
    const token = verified()
    expect((await hook.run(token, fresh({ role: 'manager' })))['role']).toBe('manager')
    // A new record (the user changed): the hook runs again on the new data.
    expect((await hook.run(token, fresh({ role: 'staff' })))['role']).toBe('staff')
    expect((await hook.run(token, fresh({})))['role']).toBe('authenticated')
    expect(await calls()).toEqual({ ok: 3 })
  })

  it("restrict access: refuses with the hook's 403 and message, lets allowed emails through", async () => {
    const hook = pgHook('restrict_application_access')
    const err = await failure(() => hook.run(verified('someone@gmail.com'), fresh()))
    const response = errorResponse(err)
    expect(response.status).toBe(403)
    expect(response.body).toBe(
      '{"code":"GW301","details":null,"hint":null,"message":"Staging access is only allowed to team members. Please use your @company.com account instead"}',
    )
    const allowed = verified('example@company.com')
    expect((await hook.run(allowed, fresh()))['email']).toBe('example@company.com')
    expect(await calls()).toEqual({ ok: 1, rejected: 1 })
  })

  it('refuses SSO users by their user record', async () => {
    const hook = pgHook('refuse_sso_users')
    const sso = verified('employee@corp.example')
    const local = verified('dana@example.com')
    await sql`insert into auth.users (id, email, is_sso_user) values (${sso.sub}::uuid, 'employee@corp.example', true), (${local.sub}::uuid, 'dana@example.com', false)`
    const err = await failure(() => hook.run(sso, fresh()))
    expect(err.status).toBe(403)
    expect(err.message).toBe('SSO accounts cannot use this API')
    expect((await hook.run(local, fresh()))['sub']).toBe(local.sub)
  })

  it('quotes the identifiers: a mixed-case function name is called as written', async () => {
    expect((await pgHook('CamelHook').run(verified(), fresh()))['camel']).toBe(true)
  })
})

describe('hooks that misbehave', () => {
  it('a hook that sleeps past the timeout: GW303, as soon as statement_timeout fires', async () => {
    const hook = pgHook('sleepy', 300)
    const started = performance.now()
    const err = await failure(() => hook.run(verified(), fresh()))
    const elapsed = performance.now() - started
    expect(elapsed).toBeLessThan(1500)
    expect(errorResponse(err).status).toBe(500)
    expect(errorResponse(err).body).toBe(
      '{"code":"GW303","details":null,"hint":null,"message":"Access token hook failed"}',
    )
    expect(err.reason).toBe('timeout: statement_timeout (300 ms) cancelled the hook function')
    expect(await calls()).toEqual({ timeout: 1 })
    // The pool is usable afterwards.
    const next = pgHook('minimal_jwt', 300)
    expect((await next.run(verified(), fresh()))['aal']).toBe('aal1')
  })

  it('an error object without http_code answers 500 with its message', async () => {
    const err = await failure(() => pgHook('error_without_code').run(verified(), fresh()))
    expect(err.kind).toBe('HookRejected')
    expect(errorResponse(err).status).toBe(500)
    expect(errorResponse(err).body).toBe(
      '{"code":"GW301","details":null,"hint":null,"message":"Account under review"}',
    )
  })

  it('an error object without a message is no error', async () => {
    const token = verified()
    expect(await pgHook('error_without_message').run(token, fresh())).toEqual({
      ...token.claims,
      app_metadata: { provider: 'email', plan: 'pro' },
    })
  })

  it('output without a required claim: GW302 and one log line naming the claim, no value', async () => {
    const token = verified('private-person@example.com')
    const err = await failure(() => pgHook('drops_email').run(token, fresh()))
    expect(errorResponse(err).status).toBe(500)
    expect(errorResponse(err).body).toBe(
      '{"code":"GW302","details":null,"hint":null,"message":"Access token hook returned an invalid response"}',
    )
    expect(logLines).toHaveLength(1)
    expect(JSON.parse(logLines[0]!).reason).toBe("claim 'email': required")
    expect(logLines[0]).not.toContain(token.sub!)
    expect(await calls()).toEqual({ invalid: 1 })
  })

  it('claims returned without the {"claims": ...} wrapper: GW302 (Supabase: "output claims field is missing")', async () => {
    const err = await failure(() => pgHook('bare_claims').run(verified(), fresh()))
    expect(err.kind).toBe('HookContractViolation')
    expect(err.reason).toBe('the claims field is missing')
  })

  it('null: GW302', async () => {
    const err = await failure(() => pgHook('returns_null').run(verified(), fresh()))
    expect(err.kind).toBe('HookContractViolation')
    expect(err.reason).toBe('the hook function returned null')
  })

  it('an answer over the size limit: GW302', async () => {
    const err = await failure(() => pgHook('huge', 2000, 10_000).run(verified(), fresh()))
    expect(err.kind).toBe('HookContractViolation')
    expect(err.reason).toBe('the answer is larger than 10000 bytes')
  })

  it('an exception in the hook: GW303 with the SQLSTATE only, never the message (it may hold data)', async () => {
    const token = verified('leaky@example.com')
    const err = await failure(() => pgHook('raises').run(token, fresh()))
    expect(err.kind).toBe('HookUnavailable')
    expect(err.reason).toBe('the hook function failed (P0001)')
    expect(logLines).toHaveLength(1)
    expect(logLines[0]).not.toContain('leaky@example.com')
    expect(await calls()).toEqual({ error: 1 })
  })

  it('a function that does not exist: GW303 (42883)', async () => {
    const err = await failure(() => pgHook('no_such_hook').run(verified(), fresh()))
    expect(err.reason).toBe('the hook function failed (42883)')
  })
})
