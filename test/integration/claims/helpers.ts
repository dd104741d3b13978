// Integration support for the claims stage: a Supabase-shaped database with install.sql, tokens, configs.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import postgres from 'postgres'
import type { VerifiedToken } from '../../../src/auth/types.js'
import type { ClaimsStore } from '../../../src/claims/index.js'
import {
  type ClaimsConfig,
  type DbConfig,
  DEFAULT_SESSION_QUERY,
  DEFAULT_USER_QUERY,
} from '../../../src/config/types.js'

export const SQL_DIR = new URL('../../../sql/', import.meta.url)

export function sqlFile(name: string): string {
  return readFileSync(new URL(name, SQL_DIR), 'utf8')
}

// The columns of auth.users / auth.sessions the gateway reads (POSTGREST-CONTRACT.md), as GoTrue
// creates them, and PostgREST's roles.
const AUTH_SCHEMA = `
do $$ begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin; end if;
end $$;
create schema auth;
create table auth.users (
  id uuid primary key,
  role varchar(255),
  email varchar(255),
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  banned_until timestamptz,
  deleted_at timestamptz,
  last_sign_in_at timestamptz,
  is_anonymous boolean not null default false
);
create table auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  not_after timestamptz,
  created_at timestamptz default now()
);
grant usage on schema public to anon, authenticated, service_role;
`

/** Runs one of the shipped files as psql would: one connection, its own BEGIN/COMMIT. */
export async function runSqlFile(url: string, name: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await sql.unsafe(sqlFile(name))
  } finally {
    await sql.end()
  }
}

export interface TestDatabase {
  readonly url: string
  /** A superuser client on the test database. */
  readonly sql: postgres.Sql
  drop(): Promise<void>
}

/** A fresh database with the auth schema (and install.sql unless told otherwise) on `adminUrl`'s server. */
export async function createAuthDatabase(
  adminUrl: string,
  options: { install?: boolean } = {},
): Promise<TestDatabase> {
  const name = `claims_${randomUUID().replaceAll('-', '')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const sql = postgres(url.toString(), { max: 4, onnotice: () => {} })
  await sql.unsafe(AUTH_SCHEMA)
  if (options.install !== false) await runSqlFile(url.toString(), 'install.sql')
  return {
    url: url.toString(),
    sql,
    async drop() {
      await sql.end({ timeout: 1 })
      const again = postgres(adminUrl, { max: 1, onnotice: () => {} })
      await again.unsafe(`drop database if exists ${name} with (force)`)
      await again.end()
    },
  }
}

export async function insertUser(
  sql: postgres.Sql,
  appMetadata: Record<string, unknown> = { provider: 'email', providers: ['email'] },
  role = 'authenticated',
): Promise<string> {
  const id = randomUUID()
  await sql`insert into auth.users (id, role, raw_app_meta_data) values (${id}, ${role}, ${sql.json(appMetadata as postgres.JSONValue)})`
  return id
}

export async function insertSession(sql: postgres.Sql, userId: string): Promise<string> {
  const id = randomUUID()
  await sql`insert into auth.sessions (id, user_id) values (${id}, ${userId})`
  return id
}

/** What verify would hand to freshen for a Supabase access token. */
export function verifiedToken(
  sub: string,
  options: { sessionId?: string; appMetadata?: Record<string, unknown>; role?: string } = {},
): VerifiedToken {
  const claims: Record<string, unknown> = {
    sub,
    aud: 'authenticated',
    role: options.role ?? 'authenticated',
    app_metadata: options.appMetadata ?? { provider: 'email' },
  }
  if (options.sessionId !== undefined) claims['session_id'] = options.sessionId
  return {
    token: `token-for-${sub}`,
    claims,
    exp: null,
    nbf: null,
    iat: null,
    sub,
    sessionId: options.sessionId ?? null,
    role: options.role ?? 'authenticated',
    kid: null,
    alg: 'HS256',
  }
}

export function dbConfig(url: string, overrides: Partial<DbConfig> = {}): DbConfig {
  return {
    url,
    poolSize: 4,
    lookupTimeoutMs: 2_000,
    userQuery: DEFAULT_USER_QUERY,
    sessionQuery: DEFAULT_SESSION_QUERY,
    notifyChannel: 'postgrest_gateway',
    ...overrides,
  }
}

export function claimsConfig(overrides: Partial<ClaimsConfig> = {}): ClaimsConfig {
  return {
    cacheMaxEntries: 10_000,
    ttlSeconds: 60,
    maxStaleSeconds: 300,
    disconnectedTtlSeconds: 5,
    onDatabaseDown: 'fail',
    ...overrides,
  }
}

/** Polls `probe` on every tick until it returns true; the elapsed ms, or a rejection after `withinMs`. */
export async function until(probe: () => boolean | Promise<boolean>, withinMs: number): Promise<number> {
  const started = performance.now()
  for (;;) {
    if (await probe()) return performance.now() - started
    if (performance.now() - started > withinMs) throw new Error(`condition not met within ${withinMs} ms`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** The error a freshen call throws or rejects with (fails the test when it succeeds). */
export async function failure(run: () => unknown): Promise<{ kind: string; status: number; code: string }> {
  try {
    await run()
  } catch (err) {
    const e = err as { kind: string; status: number; code: string }
    return { kind: e.kind, status: e.status, code: e.code }
  }
  throw new Error('expected a failure')
}

/**
 * The shared server of the test run when the global setup provides one, else one for this file.
 * `release` stops only a server this file started.
 */
export async function testServer(): Promise<{ adminUrl: string; release(): Promise<void> }> {
  const { inject } = await import('vitest')
  const shared = (inject as (key: string) => unknown)('pgAdminUrl')
  if (typeof shared === 'string') return { adminUrl: shared, release: async () => {} }
  const { startPostgres } = await import('../../support/postgres.js')
  const server = await startPostgres()
  return { adminUrl: server.url, release: () => server.destroy() }
}

/**
 * Notifications arrive asynchronously (an insert's too): `barrier` sends a marker through the same
 * channel and waits until the store has seen it, so every earlier notification has been applied.
 */
export function trackNotifications(store: ClaimsStore): { barrier(sql: postgres.Sql): Promise<void> } {
  const seen = new Set<string | null>()
  store.onInvalidate((userId) => seen.add(userId))
  let marker = 0
  return {
    async barrier(sql) {
      const id = `barrier-${++marker}`
      await sql`select pg_notify('postgrest_gateway', json_build_object('user_id', ${id}::text)::text)`
      await until(() => seen.has(id), 2_000)
    },
  }
}
