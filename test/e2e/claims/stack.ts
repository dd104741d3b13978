// End-to-end support: real PostgreSQL (demo schema, install.sql, custom-claims.sql), the PostgREST stand-in and the built gateway.
import { randomUUID } from 'node:crypto'
import postgres from 'postgres'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { sumSamples } from '../../support/metrics.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { signHs } from '../../support/tokens.js'

export const INBOUND_SECRET = 'inbound-secret-of-the-identity-provider-32+'
export const UPSTREAM_SECRET = 'secret-shared-by-gateway-and-postgrest-32+'

export type DemoUser = keyof typeof DEMO_USERS

export interface Stack {
  readonly db: TestDatabase
  /** Superuser client on the test database (the "admin" who changes users). */
  readonly sql: postgres.Sql
  readonly standIn: StandIn
  readonly gateway: GatewayProcess
  /** Every gateway started on this stack (the first one is `gateway`). */
  readonly gateways: GatewayProcess[]
  /** Another gateway process on the same database and stand-in. */
  addGateway(env?: Record<string, string>): Promise<GatewayProcess>
  close(): Promise<void>
}

export interface StackOptions {
  /** Superuser URL of the server to create the database on. */
  readonly adminUrl: string
  /** GATEWAY_* variables over the defaults below. */
  readonly env?: Record<string, string>
  /** More SQL run as superuser on the new database before the gateway starts. */
  readonly setupSql?: string
  /** `/ready` (default: database listening, upstream reachable) or `/live`. */
  readonly waitFor?: 'live' | 'ready'
  /** The database URL as the gateway reaches it (e.g. through a relay); default the database's own. */
  readonly gatewayDbUrl?: (dbUrl: string) => string
}

/** The gateway environment every e2e claims test starts from. */
export function gatewayEnv(standIn: StandIn, dbUrl: string): Record<string, string> {
  return {
    GATEWAY_UPSTREAM_URL: standIn.url,
    GATEWAY_JWT_SECRET: INBOUND_SECRET,
    GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
    GATEWAY_DB_URL: dbUrl,
    GATEWAY_ROLES_ALLOWED: 'authenticated,manager,staff',
    GATEWAY_LOG_LEVEL: 'warn',
    GATEWAY_SHUTDOWN_DELAY_MS: '0',
  }
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const db = await createTestDatabase(options.adminUrl, {
    schema: 'demo',
    sql: ['sql/install.sql', 'sql/custom-claims.sql'],
  })
  const sql = postgres(db.url, { max: 4, onnotice: () => {} })
  const gateways: GatewayProcess[] = []
  let standIn: StandIn | null = null
  try {
    if (options.setupSql !== undefined) await sql.unsafe(options.setupSql)
    const upstream = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: UPSTREAM_SECRET,
      anonRole: 'anon',
    })
    standIn = upstream
    const env = { ...gatewayEnv(upstream, options.gatewayDbUrl?.(db.url) ?? db.url), ...options.env }
    const addGateway = async (extra: Record<string, string> = {}): Promise<GatewayProcess> => {
      const gateway = await startGateway({ env: { ...env, ...extra }, waitFor: options.waitFor ?? 'ready' })
      gateways.push(gateway)
      return gateway
    }
    const gateway = await addGateway()
    return {
      db,
      sql,
      standIn: upstream,
      gateway,
      gateways,
      addGateway,
      async close() {
        await Promise.all(gateways.map((g) => g.stop('SIGKILL')))
        await upstream.close()
        await sql.end({ timeout: 1 })
        await db.drop()
      },
    }
  } catch (err) {
    await Promise.all(gateways.map((g) => g.stop('SIGKILL')))
    await standIn?.close()
    await sql.end({ timeout: 1 })
    await db.drop()
    throw err
  }
}

/** A Supabase-shaped access token for a user id, valid for ten minutes, with the claims of sign-in. */
export function accessToken(
  userId: string,
  options: {
    sessionId?: string
    appMetadata?: Record<string, unknown>
    extra?: Record<string, unknown>
  } = {},
): string {
  const now = Math.floor(Date.now() / 1000)
  const claims: Record<string, unknown> = {
    iss: 'https://auth.example.test/auth/v1',
    sub: userId,
    aud: 'authenticated',
    exp: now + 600,
    iat: now,
    role: 'authenticated',
    email: `${userId.slice(0, 8)}@example.com`,
    phone: '',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now }],
    is_anonymous: false,
    // What app_metadata said at sign-in: the gateway must not trust it over the database.
    app_metadata: options.appMetadata ?? { provider: 'email', providers: ['email'] },
    user_metadata: {},
    ...options.extra,
  }
  if (options.sessionId !== undefined) claims['session_id'] = options.sessionId
  return signHs(claims, INBOUND_SECRET)
}

/** A demo user's token, with the session id of sql/demo/demo-data.sql. */
export function demoToken(user: DemoUser, extra?: Record<string, unknown>): string {
  const { id, sessionId } = DEMO_USERS[user]
  return accessToken(id, extra === undefined ? { sessionId } : { sessionId, extra })
}

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  /** Parsed JSON body, or `undefined` when the body is not JSON. */
  readonly json: unknown
}

/** One request through a gateway; the body is read whole. */
export async function call(
  gateway: GatewayProcess,
  path: string,
  token: string | null,
  init: RequestInit = {},
): Promise<Answer> {
  const headers = new Headers(init.headers)
  if (token !== null) headers.set('authorization', `Bearer ${token}`)
  const res = await fetch(`${gateway.url}${path}`, { ...init, headers })
  const text = await res.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

/** What PostgreSQL saw for the request: role, claims (the demo's `request_context()`). */
export async function requestContext(
  gateway: GatewayProcess,
  token: string,
): Promise<{ status: number; role?: string; claims?: Record<string, unknown>; body: unknown }> {
  const answer = await call(gateway, '/rpc/request_context', token, { method: 'POST' })
  const body = answer.json as { role?: string; claims?: Record<string, unknown> } | undefined
  return {
    status: answer.status,
    ...(body?.role === undefined ? {} : { role: body.role }),
    ...(body?.claims === undefined ? {} : { claims: body.claims }),
    body: answer.json,
  }
}

/** Sum of a counter (all label sets, or those whose label text contains `labels`) from /metrics. */
export async function metric(gateway: GatewayProcess, name: string, labels?: string): Promise<number> {
  const res = await fetch(`${gateway.adminUrl}/metrics`)
  return sumSamples(await res.text(), name, labels)
}

/** Status of the admin `/ready` endpoint. */
export async function readiness(gateway: GatewayProcess): Promise<number> {
  try {
    const res = await fetch(`${gateway.adminUrl}/ready`, { signal: AbortSignal.timeout(2_000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return 0
  }
}

/**
 * Polls `probe` until it returns a value other than `undefined`; returns it with the elapsed ms and
 * the number of probes, or rejects after `withinMs`.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  withinMs: number,
  what: string,
): Promise<{ value: T; ms: number; tries: number }> {
  const started = performance.now()
  for (let tries = 1; ; tries++) {
    const value = await probe()
    const ms = performance.now() - started
    if (value !== undefined) return { value, ms, tries }
    if (ms > withinMs) throw new Error(`${what}: not within ${withinMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** The body and headers a gateway error carries (the whole body, so a wire change is deliberate). */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ code, details: null, hint: null, message })
}

/** A new user (and a session for it), as Supabase Auth creates them; returns the ids and a token. */
export async function signUp(
  stack: Pick<Stack, 'sql' | 'gateways'>,
  appMetadata: Record<string, unknown> = { provider: 'email', providers: ['email'] },
): Promise<{ id: string; sessionId: string; token: string }> {
  const { sql } = stack
  const id = randomUUID()
  const sessionId = randomUUID()
  const before = await Promise.all(stack.gateways.map((g) => metric(g, USER_INVALIDATIONS, 'kind="user"')))
  await sql`insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
    values (${id}, 'authenticated', 'authenticated', ${`${id}@example.com`},
      ${sql.json(appMetadata as postgres.JSONValue)}, '{}', now(), now())`
  await sql`insert into auth.sessions (id, user_id, created_at, updated_at, aal) values (${sessionId}, ${id}, now(), now(), 'aal1')`
  // The insert notifies every gateway (it may have cached "no such user"); wait until each has
  // applied it, so that it cannot evict the first answer the test is about to read.
  await Promise.all(
    stack.gateways.map((g, i) =>
      eventually(
        async () =>
          (await metric(g, USER_INVALIDATIONS, 'kind="user"')) > (before[i] ?? 0) ? true : undefined,
        5_000,
        'the insert notification',
      ),
    ),
  )
  return { id, sessionId, token: accessToken(id, { sessionId }) }
}

const USER_INVALIDATIONS = 'gateway_claims_invalidations_total'
