// Benchmark: commit-to-visible latency of a claims change through NOTIFY, over 100 changes (p50/p99).
// Run: npm run build && node dist/bench/freshness.js
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import postgres from 'postgres'
import { createClaimsStore } from '../src/claims/index.js'
import { DEFAULT_SESSION_QUERY, DEFAULT_USER_QUERY } from '../src/config/types.js'
import { startPostgres } from '../test/support/postgres.js'

const CHANGES = 100

async function main(): Promise<void> {
  const server = await startPostgres()
  const sql = postgres(server.url, { max: 1, onnotice: () => {} })
  try {
    await sql.unsafe(`
      create schema auth;
      create table auth.users (id uuid primary key, role text, raw_app_meta_data jsonb,
        banned_until timestamptz, deleted_at timestamptz);
      create table auth.sessions (id uuid primary key, user_id uuid references auth.users on delete cascade,
        not_after timestamptz);`)
    await sql.unsafe(readFileSync(new URL('../../sql/install.sql', import.meta.url), 'utf8'))
    const store = createClaimsStore({
      db: {
        url: server.url,
        poolSize: 2,
        lookupTimeoutMs: 2_000,
        userQuery: DEFAULT_USER_QUERY,
        sessionQuery: DEFAULT_SESSION_QUERY,
        notifyChannel: 'postgrest_gateway',
      },
      claims: {
        cacheMaxEntries: 1_000,
        ttlSeconds: 60,
        maxStaleSeconds: 300,
        disconnectedTtlSeconds: 5,
        onDatabaseDown: 'fail',
      },
    })
    await store.start()
    const id = randomUUID()
    await sql`insert into auth.users (id, role, raw_app_meta_data) values (${id}, 'authenticated', '{"n":0}')`
    const token = {
      token: 't',
      claims: { sub: id },
      exp: null,
      nbf: null,
      iat: null,
      sub: id,
      sessionId: null,
      kid: null,
      alg: 'HS256',
    }
    await store.freshen(token)
    const latencies: number[] = []
    for (let n = 1; n <= CHANGES; n++) {
      await sql`update auth.users set raw_app_meta_data = ${sql.json({ n })} where id = ${id}`
      const committed = performance.now()
      for (;;) {
        const claims = await store.freshen(token)
        if (claims.appMetadata['n'] === n) break
        await new Promise((resolve) => setImmediate(resolve))
      }
      latencies.push(performance.now() - committed)
    }
    await store.close()
    latencies.sort((a, b) => a - b)
    const at = (q: number): string =>
      (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2)
    console.log(
      `commit-to-visible over ${CHANGES} changes: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`,
    )
  } finally {
    await sql.end()
    await server.destroy()
  }
}

await main()
