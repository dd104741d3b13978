// Test support: PostgreSQL + an upstream (the PostgREST stand-in or a real `postgrest`) + the built gateway, started together for e2e suites.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { request } from 'undici'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from './database.js'
import { type GatewayProcess, gatewayEntry, startGateway } from './gateway-process.js'
import { findPostgrestBinary, type PostgrestProcess, startPostgrest } from './postgrest-binary.js'
import {
  type StandIn,
  type StandInOptions,
  type StandInRequest,
  startPostgrestStandIn,
} from './postgrest-stand-in.js'
import { adminUrl } from './shared-postgres.js'
import { signHs } from './tokens.js'

/** The identity provider's HS256 secret: what clients' tokens are signed with. */
export const INBOUND_SECRET = 'inbound-secret-of-the-identity-provider-32+'
/** The secret the gateway mints with and the upstream verifies with (PostgREST `jwt-secret`). */
export const UPSTREAM_SECRET = 'secret-shared-by-gateway-and-postgrest-32+'

export type UpstreamKind = 'stand-in' | 'postgrest'

export interface UpstreamChoice {
  readonly kind: UpstreamKind
  /** Why the kind cannot run here (no `postgrest` binary), or null. */
  readonly skipReason: string | null
}

export interface Upstream {
  readonly kind: UpstreamKind
  readonly url: string
  /** The stand-in's handle (request log, in-flight count); null for a real PostgREST, which keeps no log. */
  readonly standIn: StandIn | null
  close(): Promise<void>
}

export interface E2eStack {
  readonly db: TestDatabase
  readonly upstream: Upstream
  readonly gateway: GatewayProcess
  /** What reached the upstream, in order; null for a real PostgREST. */
  readonly requests: StandInRequest[] | null
  close(): Promise<void>
}

export interface E2eStackOptions {
  readonly upstream: UpstreamKind
  /** GATEWAY_* variables over the defaults of {@link gatewayEnv}. */
  readonly env?: Record<string, string>
  /** SQL run as superuser in the new database before anything starts (e.g. to change a user). */
  readonly setupSql?: string
}

/** The gateway in front of `upstreamUrl`: inbound HS256 keys, fresh claims from `dbUrl`, `manager` allowed. */
export function gatewayEnv(upstreamUrl: string, dbUrl: string | null): Record<string, string> {
  const env: Record<string, string> = {
    GATEWAY_UPSTREAM_URL: upstreamUrl,
    GATEWAY_JWT_SECRET: INBOUND_SECRET,
    GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
    GATEWAY_ROLES_ALLOWED: 'authenticated,manager',
    GATEWAY_LOG_LEVEL: 'warn',
    GATEWAY_SHUTDOWN_DELAY_MS: '0',
  }
  if (dbUrl !== null) env['GATEWAY_DB_URL'] = dbUrl
  return env
}

/**
 * The upstream kinds an e2e suite runs against: always the stand-in, and a real PostgREST with a
 * skip reason when no binary is installed (the reason is printed once per test run).
 */
export function upstreamChoices(): readonly UpstreamChoice[] {
  const bin = findPostgrestBinary()
  const reason =
    bin === null
      ? 'no `postgrest` on PATH and POSTGREST_BIN is not set (https://github.com/PostgREST/postgrest/releases)'
      : null
  if (reason !== null) warnOncePerRun(`Skipping e2e suites against a real PostgREST: ${reason}.`)
  return [
    { kind: 'stand-in', skipReason: null },
    { kind: 'postgrest', skipReason: reason },
  ]
}

// Test files run in separate worker processes of one vitest process (their parent): a marker file
// named after that parent lets only the first worker print.
function warnOncePerRun(message: string): void {
  try {
    closeSync(openSync(join(tmpdir(), `postgrest-gateway-e2e-skip-${process.ppid}`), 'wx'))
  } catch {
    return
  }
  console.warn(message)
}

/** Starts the chosen upstream on the demo database, configured like the gateway expects. */
export async function startUpstream(kind: UpstreamKind, db: TestDatabase): Promise<Upstream> {
  const options: StandInOptions = { dbUrl: db.authenticatorUrl, jwtSecret: UPSTREAM_SECRET, anonRole: 'anon' }
  if (kind === 'stand-in') {
    const standIn = await startPostgrestStandIn(options)
    return { kind, url: standIn.url, standIn, close: () => standIn.close() }
  }
  const postgrest: PostgrestProcess = await startPostgrest(options)
  return { kind, url: postgrest.url, standIn: null, close: () => postgrest.close() }
}

/** A demo database (with the gateway's install.sql), the upstream, and the gateway, ready. */
export async function startE2eStack(options: E2eStackOptions): Promise<E2eStack> {
  const db = await createTestDatabase(adminUrl(), { schema: 'demo', sql: ['sql/install.sql'] })
  let upstream: Upstream | null = null
  try {
    if (options.setupSql !== undefined) {
      const sql = postgres(db.url, { max: 1, onnotice: () => {} })
      try {
        await sql.unsafe(options.setupSql)
      } finally {
        await sql.end()
      }
    }
    upstream = await startUpstream(options.upstream, db)
    const gateway = await startGateway({
      env: { ...gatewayEnv(upstream.url, db.url), ...options.env },
      waitFor: 'ready',
    })
    const started = upstream
    return {
      db,
      upstream: started,
      gateway,
      requests: started.standIn?.requests ?? null,
      async close() {
        await gateway.stop()
        await started.close()
        await db.drop()
      },
    }
  } catch (err) {
    await upstream?.close()
    await db.drop()
    throw err
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

/**
 * Claims as Supabase Auth issues them for a demo user, with the token's own (possibly stale)
 * `app_metadata`: no `role` in it, so any role the gateway uses comes from the database.
 */
export function userClaims(
  user: keyof typeof DEMO_USERS,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = nowSeconds()
  return {
    iss: 'http://127.0.0.1:9999/auth/v1',
    sub: DEMO_USERS[user].id,
    aud: 'authenticated',
    exp: now + 3600,
    iat: now,
    email: `${user}@example.com`,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: {},
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now }],
    session_id: DEMO_USERS[user].sessionId,
    is_anonymous: false,
    ...overrides,
  }
}

/** An inbound token signed with {@link INBOUND_SECRET}. */
export function inboundToken(claims: object): string {
  return signHs(claims, INBOUND_SECRET)
}

/** A Supabase API key (`anon`, `service_role`): long-lived, no `sub`. */
export function apiKey(role: string): string {
  const now = nowSeconds()
  return inboundToken({ iss: 'supabase', ref: 'e2e', role, iat: now, exp: now + 10 * 365 * 86400 })
}

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
  readonly text: string
}

/**
 * One HTTP exchange with undici's `request` (not fetch: a header given as an array is sent as
 * separate header lines, which fetch would merge into one).
 */
export async function send(
  url: string,
  init: {
    method?: 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'PUT' | 'DELETE' | 'OPTIONS'
    headers?: Record<string, string | string[]>
    body?: string
  } = {},
): Promise<Reply> {
  const res = await request(url, {
    method: init.method ?? 'GET',
    headers: init.headers ?? {},
    body: init.body ?? null,
  })
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

/** `Authorization: Bearer <token>`. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

export interface CommandResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the built gateway (`node dist/src/main.js args...`) to completion with exactly `env` as its
 * GATEWAY_* variables (none from the runner's environment), for start-up refusals and commands.
 */
export function runGatewayCommand(args: readonly string[], env: Record<string, string>, timeoutMs = 10_000) {
  const childEnv: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('GATEWAY_')) childEnv[name] = value
  }
  Object.assign(childEnv, { GATEWAY_HOST: '127.0.0.1', GATEWAY_ADMIN_HOST: '127.0.0.1' }, env)
  return new Promise<CommandResult>((resolve, reject) => {
    const child = spawn(process.execPath, [gatewayEntry(), ...args], {
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(`gateway ${args.join(' ')} did not exit within ${timeoutMs} ms:\n${stdout}\n${stderr}`),
      )
    }, timeoutMs)
    child.once('error', reject)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes; returns the last answer. */
export async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

/** The parts of an error answer a client relies on, for one whole-value assertion. */
export function errorView(reply: Reply): Record<string, unknown> {
  const requestId = reply.headers['x-request-id']
  return {
    status: reply.status,
    body: reply.text,
    contentType: reply.headers['content-type'],
    proxyStatus: reply.headers['proxy-status'],
    wwwAuthenticate: reply.headers['www-authenticate'],
    retryAfter: reply.headers['retry-after'],
    requestId: typeof requestId === 'string' && /^[0-9a-f-]{36}$/.test(requestId) ? 'uuid' : requestId,
  }
}

/**
 * The expected {@link errorView} of an error PostgREST or the gateway answers with; the body is
 * written out here, key order and all (PostgREST's aeson order), not taken from the product.
 */
export function expectedError(
  status: number,
  code: string,
  message: string,
  options: { details?: string; origin?: 'PostgREST' | 'gateway'; challenge?: string } = {},
): Record<string, unknown> {
  const details = options.details === undefined ? 'null' : JSON.stringify(options.details)
  return {
    status,
    body: `{"code":"${code}","details":${details},"hint":null,"message":${JSON.stringify(message)}}`,
    contentType: 'application/json; charset=utf-8',
    proxyStatus: `${options.origin === 'gateway' ? 'postgrest-gateway' : 'PostgREST'}; error=${code}`,
    wwwAuthenticate: options.challenge,
    retryAfter: undefined,
    requestId: 'uuid',
  }
}

/** PostgREST's challenge for an invalid token: `Bearer error="invalid_token", error_description="<message>"`. */
export function invalidToken(message: string): string {
  return `Bearer error="invalid_token", error_description=${JSON.stringify(message)}`
}
