// Benchmarks: shared fixtures (Supabase-shaped claims, secrets, token builders) for micro, load and memory runs.
import { randomUUID } from 'node:crypto'
import { loadConfig } from '../src/config/index.js'
import type { Config } from '../src/config/types.js'
import { signHs } from '../test/support/tokens.js'

/** Inbound HS256 secret (what Supabase Auth signs with) and the upstream secret PostgREST trusts. */
export const INBOUND_SECRET = 'bench-inbound-secret-0123456789abcdef-0123456789'
export const UPSTREAM_SECRET = 'bench-upstream-secret-0123456789abcdef-012345678'

/** One user of the benchmark: the ids its token carries. */
export interface BenchUser {
  readonly id: string
  readonly sessionId: string
}

export function makeUsers(count: number): BenchUser[] {
  const users: BenchUser[] = []
  for (let i = 0; i < count; i++) users.push({ id: randomUUID(), sessionId: randomUUID() })
  return users
}

/**
 * Claims as Supabase Auth issues them for an email user; with an HS256 header the token is about
 * 680 bytes, the size the targets are stated for.
 */
export function supabaseClaims(user: BenchUser, n: number): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return {
    aud: 'authenticated',
    exp: now + 3600,
    iat: now - (n % 600),
    iss: 'https://bench.supabase.co/auth/v1',
    sub: user.id,
    email: `user${n}@example.com`,
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: { email_verified: true, full_name: `Bench User Number ${n}`, locale: 'en-GB' },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now - 60 }],
    session_id: user.sessionId,
    is_anonymous: false,
  }
}

export function hsToken(user: BenchUser, n: number): string {
  return signHs(supabaseClaims(user, n), INBOUND_SECRET)
}

/** The signing input (header.payload) and signature of a compact JWS. */
export function splitToken(token: string): { input: string; signature: Buffer } {
  const dot = token.lastIndexOf('.')
  return { input: token.slice(0, dot), signature: Buffer.from(token.slice(dot + 1), 'base64url') }
}

/**
 * A copy of `text` as a new flat string, as Node's HTTP parser hands each request's header value
 * over: caches keyed by string content cannot reuse a hash computed for an earlier request.
 */
export function freshCopy(bytes: Buffer): string {
  return bytes.toString('latin1')
}

/** A gateway Config from the same contract as the process: GATEWAY_* variables. */
export function benchConfig(env: Record<string, string>): Config {
  return loadConfig({
    argv: [],
    env: {
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_ADMIN_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      GATEWAY_ADMIN_PORT: '0',
      GATEWAY_JWT_SECRET: INBOUND_SECRET,
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
      GATEWAY_UPSTREAM_URL: 'http://127.0.0.1:9',
      ...env,
    },
  })
}
