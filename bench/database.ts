// Benchmarks: a real PostgreSQL with Supabase's auth tables, sql/install.sql and the benchmark's users.
import { existsSync, readFileSync } from 'node:fs'
import postgres from 'postgres'
import { type PostgresServer, startPostgres } from '../test/support/postgres.js'
import type { BenchUser } from './fixtures.js'

const SQL_DIR = new URL('../../sql/', import.meta.url)

// The columns the default user and session queries read (Supabase Auth's names).
const MINIMAL_AUTH = `
  create schema if not exists auth;
  create table if not exists auth.users (id uuid primary key, role text, raw_app_meta_data jsonb,
    banned_until timestamptz, deleted_at timestamptz);
  create table if not exists auth.sessions (id uuid primary key,
    user_id uuid references auth.users on delete cascade, not_after timestamptz);`

export interface BenchDatabase {
  readonly url: string
  readonly server: PostgresServer
  /** Inserts users (and one session each) in batches. */
  addUsers(users: readonly BenchUser[]): Promise<void>
  close(): Promise<void>
}

export async function startBenchDatabase(): Promise<BenchDatabase> {
  const server = await startPostgres()
  const sql = postgres(server.url, { max: 1, onnotice: () => {} })
  const demo = new URL('demo/supabase-auth.sql', SQL_DIR)
  await sql.unsafe(existsSync(demo) ? readFileSync(demo, 'utf8') : MINIMAL_AUTH)
  await sql.unsafe(readFileSync(new URL('install.sql', SQL_DIR), 'utf8'))
  return {
    url: server.url,
    server,
    async addUsers(users) {
      for (let i = 0; i < users.length; i += 5_000) {
        const batch = users.slice(i, i + 5_000)
        const ids = batch.map((u) => u.id)
        const sessions = batch.map((u) => u.sessionId)
        await sql`insert into auth.users (id, role, raw_app_meta_data)
          select id, 'authenticated', '{"provider":"email","providers":["email"],"plan":"pro"}'::jsonb
          from unnest(${ids}::uuid[]) as id`
        await sql`insert into auth.sessions (id, user_id)
          select s, u from unnest(${sessions}::uuid[], ${ids}::uuid[]) as t(s, u)`
      }
    },
    async close() {
      await sql.end()
      await server.destroy()
    },
  }
}
