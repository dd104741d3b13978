// Test support: one uniquely named database per test file, cloned from a template built once per cluster.
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'

/** Which schema the database starts with. */
export type TestSchema =
  /** Nothing but PostgreSQL's own template1. */
  | 'empty'
  /** sql/demo/supabase-auth.sql: roles, auth.users, auth.sessions, auth.uid()/role()/jwt(). */
  | 'supabase'
  /** supabase + sql/demo/demo-data.sql: public.notes under RLS, manager/staff, alice, bob, carol. */
  | 'demo'

export interface TestDatabaseOptions {
  schema: TestSchema
  /** More SQL files (repository-relative or absolute) loaded after the schema, e.g. `sql/install.sql`. */
  sql?: readonly string[]
}

export interface TestDatabase {
  readonly name: string
  /** Superuser URL of the new database. */
  readonly url: string
  /**
   * The same database as PostgREST reaches it: user `authenticator` (LOGIN NOINHERIT, a member of
   * the API roles). Only meaningful for the `supabase` and `demo` schemas.
   */
  readonly authenticatorUrl: string
  /** Drops the database, closing any connection still open to it. */
  drop(): Promise<void>
}

/** The demo users' fixed ids (sql/demo/demo-data.sql). */
export const DEMO_USERS = {
  alice: { id: 'a11ce000-0000-4000-8000-000000000001', sessionId: 'a11ce000-5e55-4000-8000-000000000001' },
  bob: { id: 'b0b00000-0000-4000-8000-000000000002', sessionId: 'b0b00000-5e55-4000-8000-000000000002' },
  carol: { id: 'ca201000-0000-4000-8000-000000000003', sessionId: 'ca201000-5e55-4000-8000-000000000003' },
} as const

const SCHEMA_FILES: { readonly [K in TestSchema]: readonly string[] } = {
  empty: [],
  supabase: ['sql/demo/supabase-auth.sql'],
  demo: ['sql/demo/supabase-auth.sql', 'sql/demo/demo-data.sql'],
}

/** The repository root: the nearest folder above this file with a package.json (works from dist/ too). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'sql'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error('repository root not found above test/support')
    dir = parent
  }
}

/** Reads the SQL files, repository-relative or absolute, in order. */
export function readSqlFiles(files: readonly string[]): string[] {
  const root = repoRoot()
  return files.map((file) => readFileSync(isAbsolute(file) ? file : join(root, file), 'utf8'))
}

/** Runs SQL files (several statements each, simple protocol) against a database. */
export async function loadSqlFiles(url: string, files: readonly string[]): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    for (const text of readSqlFiles(files)) await sql.unsafe(text)
  } finally {
    await sql.end()
  }
}

/** `url` with its database replaced. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${encodeURIComponent(database)}`
  return u.toString()
}

/** `url` as the demo schema's `authenticator` login. */
export function authenticatorUrl(url: string): string {
  const u = new URL(url)
  u.username = 'authenticator'
  u.password = 'authenticator'
  return u.toString()
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

// Per cluster and file set, the template is built once (across worker processes: an advisory lock
// serialises the builders, and a template only gets its final name once it is complete).
const templates = new Map<string, Promise<string>>()

async function ensureTemplate(adminUrl: string, files: readonly string[]): Promise<string> {
  const hash = createHash('sha256')
  for (const text of readSqlFiles(files)) hash.update(text).update('\0')
  const digest = hash.digest('hex').slice(0, 16)
  const name = `gw_tpl_${digest}`
  const key = `${new URL(adminUrl).host}/${name}`
  let pending = templates.get(key)
  if (pending === undefined) {
    pending = buildTemplate(adminUrl, name, files)
    templates.set(key, pending)
    pending.catch(() => templates.delete(key))
  }
  return await pending
}

async function buildTemplate(adminUrl: string, name: string, files: readonly string[]): Promise<string> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin`select pg_advisory_lock(hashtext(${name}))`
    try {
      const found = await admin`select 1 from pg_database where datname = ${name}`
      if (found.length > 0) return name
      const building = `${name}_building_${randomBytes(4).toString('hex')}`
      await admin.unsafe(`create database ${quoteIdent(building)}`)
      try {
        await loadSqlFiles(databaseUrl(adminUrl, building), files)
        await admin.unsafe(`alter database ${quoteIdent(building)} rename to ${quoteIdent(name)}`)
        await admin.unsafe(`alter database ${quoteIdent(name)} is_template true`)
      } catch (err) {
        await admin.unsafe(`drop database if exists ${quoteIdent(building)} with (force)`)
        throw err
      }
      return name
    } finally {
      await admin`select pg_advisory_unlock(hashtext(${name}))`
    }
  } finally {
    await admin.end()
  }
}

/**
 * Creates a database named `gw_test_<random>` with the requested schema. Schema files are loaded
 * once per cluster into a template database, so each further database costs one
 * `CREATE DATABASE ... TEMPLATE` (tens of milliseconds).
 */
export async function createTestDatabase(
  adminUrl: string,
  options: TestDatabaseOptions = { schema: 'supabase' },
): Promise<TestDatabase> {
  const files = [...SCHEMA_FILES[options.schema], ...(options.sql ?? [])]
  const template = files.length === 0 ? 'template1' : await ensureTemplate(adminUrl, files)
  const name = `gw_test_${randomBytes(6).toString('hex')}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`)
  } finally {
    await admin.end()
  }
  const url = databaseUrl(adminUrl, name)
  let dropped = false
  return {
    name,
    url,
    authenticatorUrl: authenticatorUrl(url),
    async drop() {
      if (dropped) return
      dropped = true
      const sql = postgres(adminUrl, { max: 1, onnotice: () => {} })
      try {
        await sql.unsafe(`drop database if exists ${quoteIdent(name)} with (force)`)
      } finally {
        await sql.end()
      }
    },
  }
}
