// Soak: the whole stack (embedded PostgreSQL, PostgREST stand-in, gateway process) under ~70% of its measured maximum for N minutes; not part of CI.
//
//   npm run build && node dist/scripts/soak.js --minutes 10 [--fraction 0.7] [--concurrency 32]
//
// Reports unexpected answers (any status or code that the request's kind must not get), and the
// gateway's RSS and open file descriptors (/proc/<pid>/fd) at the start and the end. Exits 1 when
// any unexpected answer was seen or the gateway died.
import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { createTestDatabase, DEMO_USERS } from '../test/support/database.js'
import { startGateway } from '../test/support/gateway-process.js'
import { startPostgres } from '../test/support/postgres.js'
import { startPostgrestStandIn } from '../test/support/postgrest-stand-in.js'
import { signHs } from '../test/support/tokens.js'

const INBOUND_SECRET = 'soak-inbound-secret-of-the-identity-provider'
const UPSTREAM_SECRET = 'soak-secret-shared-by-gateway-and-postgrest'

type Kind = 'valid' | 'fresh-token' | 'anonymous' | 'forged' | 'expired' | 'garbage' | 'unknown-user'
/** The mix: mostly valid traffic, a steady share of invalid and anonymous requests. */
const MIX: readonly Kind[] = [
  'valid',
  'valid',
  'valid',
  'valid',
  'fresh-token',
  'anonymous',
  'anonymous',
  'forged',
  'expired',
  'garbage',
  'unknown-user',
]
const EXPECTED: { readonly [K in Kind]: string } = {
  valid: '200',
  'fresh-token': '200',
  anonymous: '200',
  forged: '401 PGRST301',
  expired: '401 PGRST303',
  garbage: '401 PGRST301',
  'unknown-user': '401 GW101',
}
const PATHS = ['/notes?select=id,title', '/__standin/echo'] as const
const USERS = [DEMO_USERS.alice, DEMO_USERS.bob, DEMO_USERS.carol] as const

const now = () => Math.floor(Date.now() / 1000)

function tokenFor(user: { id: string; sessionId: string }, extra: Record<string, unknown> = {}): string {
  return signHs(
    {
      sub: user.id,
      aud: 'authenticated',
      role: 'authenticated',
      session_id: user.sessionId,
      iat: now(),
      exp: now() + 24 * 3600,
      ...extra,
    },
    INBOUND_SECRET,
  )
}

const steady = USERS.map((user) => `Bearer ${tokenFor(user)}`)

function authorizationFor(kind: Kind, i: number): string | null {
  switch (kind) {
    case 'valid':
      return steady[i % steady.length]!
    case 'fresh-token':
      // A new token string each time: verified, looked up in the claims cache and minted anew.
      return `Bearer ${tokenFor(USERS[i % USERS.length]!, { jti: randomUUID() })}`
    case 'anonymous':
      return null
    case 'forged':
      return `Bearer ${signHs({ sub: DEMO_USERS.alice.id, exp: now() + 60 }, 'not-the-secret-not-the-secret-not-the-secret')}`
    case 'expired':
      return `Bearer ${tokenFor(DEMO_USERS.alice, { exp: now() - 3600, iat: now() - 7200 })}`
    case 'garbage':
      return `Bearer ${randomUUID()}.${randomUUID()}.${randomUUID()}`
    case 'unknown-user':
      return `Bearer ${tokenFor({ id: randomUUID(), sessionId: randomUUID() })}`
  }
}

interface Stats {
  sent: number
  ok: number
  unexpected: Map<string, number>
}

async function send(agent: Agent, base: string, i: number, stats: Stats): Promise<void> {
  const kind = MIX[i % MIX.length]!
  const path = PATHS[Math.floor(i / MIX.length) % PATHS.length]!
  const authorization = authorizationFor(kind, i)
  stats.sent++
  let outcome: string
  try {
    const res = await request(base + path, {
      dispatcher: agent,
      headers: authorization === null ? {} : { authorization },
    })
    const text = await res.body.text()
    outcome = String(res.statusCode)
    if (res.statusCode >= 400) {
      try {
        outcome += ` ${(JSON.parse(text) as { code?: string }).code}`
      } catch {
        outcome += ' not-json'
      }
    }
  } catch (err) {
    outcome = `error ${(err as { code?: string }).code ?? (err as Error).message}`
  }
  if (outcome === EXPECTED[kind]) stats.ok++
  else {
    const key = `${kind} ${path.split('?')[0]} -> ${outcome}`
    stats.unexpected.set(key, (stats.unexpected.get(key) ?? 0) + 1)
  }
}

/** As many requests as `concurrency` closed-loop clients manage in `ms`: the maximum throughput. */
async function measureMax(agent: Agent, base: string, concurrency: number, ms: number): Promise<number> {
  const stats: Stats = { sent: 0, ok: 0, unexpected: new Map() }
  const deadline = Date.now() + ms
  let i = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) await send(agent, base, i++, stats)
    }),
  )
  return stats.sent / (ms / 1000)
}

function processFigures(pid: number): { rssMb: number; fds: number } {
  let rssMb = 0
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    rssMb = match === null ? 0 : Math.round(Number(match[1]) / 102.4) / 10
  } catch {
    // not Linux, or gone
  }
  let fds = 0
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length
  } catch {
    // not Linux, or gone
  }
  return { rssMb, fds }
}

function log(line: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`)
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      fraction: { type: 'string', default: '0.7' },
      concurrency: { type: 'string', default: '32' },
    },
  })
  const minutes = Number(values.minutes)
  const fraction = Number(values.fraction)
  const concurrency = Number(values.concurrency)
  if (!(minutes > 0) || !(fraction > 0 && fraction <= 1) || !(concurrency > 0)) {
    throw new Error('usage: soak.js [--minutes N] [--fraction 0..1] [--concurrency N]')
  }

  log('starting PostgreSQL, the PostgREST stand-in and the gateway')
  const pg = await startPostgres()
  const db = await createTestDatabase(pg.url, { schema: 'demo', sql: ['sql/install.sql'] })
  const standIn = await startPostgrestStandIn({
    dbUrl: db.authenticatorUrl,
    jwtSecret: UPSTREAM_SECRET,
    anonRole: 'anon',
  })
  const gateway = await startGateway({
    env: {
      GATEWAY_UPSTREAM_URL: standIn.url,
      GATEWAY_JWT_SECRET: INBOUND_SECRET,
      GATEWAY_JWT_AUD: 'authenticated',
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
      GATEWAY_DB_URL: db.url,
      GATEWAY_ROLES_ALLOWED: 'authenticated,manager,staff',
      GATEWAY_LOG_LEVEL: 'warn',
      GATEWAY_SHUTDOWN_DELAY_MS: '0',
    },
    waitFor: 'ready',
    readyTimeoutMs: 30_000,
  })
  const agent = new Agent({ connections: concurrency * 2, headersTimeout: 10_000, bodyTimeout: 10_000 })
  let exitCode = 0
  try {
    // Warm up (claims cache, JIT, keep-alive connections), then measure.
    await measureMax(agent, gateway.url, concurrency, 2000)
    const max = await measureMax(agent, gateway.url, concurrency, 5000)
    const rate = Math.max(1, Math.floor(max * fraction))
    log(
      `maximum ~${Math.round(max)} req/s with ${concurrency} clients; soaking at ${rate} req/s for ${minutes} min`,
    )

    const start = processFigures(gateway.pid)
    log(`start: gateway RSS ${start.rssMb} MB, open fds ${start.fds}`)
    const stats: Stats = { sent: 0, ok: 0, unexpected: new Map() }
    const started = Date.now()
    const end = started + minutes * 60_000
    const inFlight = new Set<Promise<void>>()
    let i = 0
    let nextReport = started + 30_000
    let sentAtReport = 0
    // Open loop: every 10 ms the requests due by now are sent, whatever the latency; in-flight is
    // capped so that a stalled gateway shows as a falling rate rather than unbounded memory here.
    while (Date.now() < end) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate)
      while (i < due && inFlight.size < concurrency * 8) {
        const p = send(agent, gateway.url, i++, stats).finally(() => inFlight.delete(p))
        inFlight.add(p)
      }
      if (Date.now() >= nextReport) {
        const figures = processFigures(gateway.pid)
        const unexpected = [...stats.unexpected.values()].reduce((a, b) => a + b, 0)
        log(
          `${Math.round((stats.sent - sentAtReport) / 30)} req/s, sent ${stats.sent}, unexpected ${unexpected}, ` +
            `RSS ${figures.rssMb} MB, fds ${figures.fds}`,
        )
        sentAtReport = stats.sent
        nextReport += 30_000
      }
      await sleep(10)
    }
    await Promise.all(inFlight)
    const finish = processFigures(gateway.pid)
    const alive = gateway.process.exitCode === null && gateway.process.signalCode === null
    const unexpected = [...stats.unexpected.values()].reduce((a, b) => a + b, 0)
    log(
      `sent ${stats.sent} in ${minutes} min (${Math.round(stats.sent / (minutes * 60))} req/s), as expected ${stats.ok}`,
    )
    log(`unexpected answers: ${unexpected}`)
    for (const [key, count] of stats.unexpected) log(`  ${count} x ${key}`)
    log(`start: RSS ${start.rssMb} MB, fds ${start.fds}; end: RSS ${finish.rssMb} MB, fds ${finish.fds}`)
    log(
      `gateway alive: ${alive}; stderr: ${gateway.stderr() === '' ? 'empty' : gateway.stderr().slice(0, 2000)}`,
    )
    if (unexpected > 0 || !alive || gateway.stderr() !== '') exitCode = 1
  } finally {
    await agent.close()
    await gateway.stop()
    await standIn.close()
    await db.drop().catch(() => undefined)
    await pg.destroy()
  }
  process.exit(exitCode)
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
