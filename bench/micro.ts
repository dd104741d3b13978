// Benchmarks, micro: the stages of the hot path on one core, each against a baseline measured in the same run.
import { createHmac, createSecretKey, verify as cryptoVerify, type KeyObject, sign } from 'node:crypto'
import { jwtVerify } from 'jose'
import { LRUCache } from 'lru-cache'
import { createVerifier, parseKeySet } from '../src/auth/index.js'
import type { VerifiedToken } from '../src/auth/types.js'
import type { Config } from '../src/config/types.js'
import { createGateway, type Gateway } from '../src/gateway.js'
import { createMinter, importSigningKey } from '../src/mint/index.js'
import type { DecisionContext } from '../src/pipeline.js'
import { createRoleMapper } from '../src/role/index.js'
import { generateKeyPairJwk, type SignAlg, signWithKey } from '../test/support/tokens.js'
import { type BenchUser, freshCopy, hsToken, INBOUND_SECRET, splitToken, supabaseClaims } from './fixtures.js'
import { type MeasureOptions, measure, type Timing } from './measure.js'
import { formatNs, formatRate, type Row, row } from './report.js'

export interface MicroOptions {
  readonly quick: boolean
  /** Users with a row in the database (when there is one) and a token each. */
  readonly users: readonly BenchUser[]
  /** Builds a gateway Config from environment overrides (the same contract as the process). */
  readonly config: (env: Record<string, string>) => Config
  readonly databaseUrl: string | null
}

function figure(t: Timing): string {
  return `${formatNs(t.nsPerOp)}/op (${formatRate(t.opsPerSec)})`
}

function metrics(t: Timing): Record<string, number> {
  return { nsPerOp: Math.round(t.nsPerOp * 10) / 10, opsPerSec: Math.round(t.opsPerSec) }
}

/** `count` tokens from distinct users, signed with `alg` (HS256 with the inbound secret). */
function tokensFor(alg: SignAlg, count: number, privateKey: KeyObject | null): string[] {
  const out: string[] = []
  for (let n = 0; n < count; n++) {
    const user = { id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, sessionId: 'x' }
    out.push(privateKey === null ? hsToken(user, n) : signWithKey(supabaseClaims(user, n), privateKey, alg))
  }
  return out
}

async function measureAsync(fn: (i: number) => Promise<unknown>, timeMs: number): Promise<Timing> {
  let i = 0
  const warmEnd = performance.now() + timeMs / 4
  while (performance.now() < warmEnd) await fn(i++)
  const start = process.hrtime.bigint()
  const end = performance.now() + timeMs
  let ops = 0
  while (performance.now() < end) {
    for (let b = 0; b < 16; b++) await fn(i++)
    ops += 16
  }
  const ns = Number(process.hrtime.bigint() - start) / ops
  return { nsPerOp: ns, opsPerSec: 1e9 / ns }
}

function ratio(value: Timing, baseline: Timing): number {
  return value.nsPerOp / baseline.nsPerOp
}

export async function runMicro(options: MicroOptions): Promise<Row[]> {
  const time = options.quick ? { warmupMs: 150, timeMs: 500 } : { warmupMs: 400, timeMs: 1500 }
  const rows: Row[] = []
  const log = (text: string) => process.stderr.write(`  micro: ${text}\n`)

  // A fresh header string per call, as from the socket: the cost every "hit" row includes.
  const sample = Buffer.from(
    `Bearer ${hsToken({ id: '00000000-0000-4000-8000-000000000000', sessionId: 'x' }, 0)}`,
  )
  const copy = measure(() => freshCopy(sample), time)
  rows.push(
    row(
      'micro',
      `fresh ${sample.length - 7}-byte header string (included in hit rows)`,
      figure(copy),
      metrics(copy),
    ),
  )

  // --- verification, cold: every call a token the cache does not hold ---------------------------
  for (const alg of ['HS256', 'ES256', 'RS256', 'EdDSA'] as const) {
    log(`verify ${alg}`)
    const pair = alg === 'HS256' ? null : generateKeyPairJwk(alg)
    const count = alg === 'HS256' ? 20_000 : alg === 'RS256' ? 1_000 : 4_000
    const tokens = tokensFor(alg, options.quick ? Math.min(count, 2_000) : count, pair?.privateKey ?? null)
    const keys = parseKeySet(pair === null ? INBOUND_SECRET : JSON.stringify(pair.publicJwk), {
      isBase64: false,
    })
    // 200 entries, the tokens cycle through thousands: every lookup misses, every insert evicts.
    const cold = createVerifier({ keys, aud: null, iss: null, clockSkewSeconds: 30, cacheMaxEntries: 200 })
    const n = tokens.length
    const verifyCold = measure((i) => cold.verify(tokens[i % n]!), time)
    const parts = tokens.map(splitToken)
    let versus = ''
    let target = ''
    let pass: boolean | null = null
    if (alg === 'HS256') {
      const key = keys.keys[0]!.key as KeyObject
      const raw = measure(
        (i) =>
          createHmac('sha256', key)
            .update(parts[i % n]!.input, 'latin1')
            .digest(),
        time,
      )
      rows.push(
        row('micro', 'baseline: raw node:crypto HMAC-SHA256 of the signing input', figure(raw), metrics(raw)),
      )
      const josekey = new TextEncoder().encode(INBOUND_SECRET)
      const jose = await measureAsync(
        (i) => jwtVerify(tokens[i % n]!, josekey, { algorithms: ['HS256'] }),
        time.timeMs,
      )
      rows.push(
        row('micro', 'baseline: jose jwtVerify HS256, key imported once', figure(jose), metrics(jose), {
          versus: `${ratio(jose, raw).toFixed(2)}x raw HMAC`,
        }),
      )
      const r = ratio(verifyCold, raw)
      versus = `${r.toFixed(2)}x raw HMAC, ${(jose.nsPerOp / verifyCold.nsPerOp).toFixed(1)}x faster than jose`
      target = '<= 2x raw HMAC'
      pass = r <= 2
    } else {
      const inputs = parts.map((p) => Buffer.from(p.input, 'latin1'))
      const pub = pair!.publicKey
      const keyInput = alg === 'ES256' ? { key: pub, dsaEncoding: 'ieee-p1363' as const } : pub
      const hash = alg === 'EdDSA' ? null : 'sha256'
      const raw = measure((i) => cryptoVerify(hash, inputs[i % n]!, keyInput, parts[i % n]!.signature), time)
      rows.push(row('micro', `baseline: raw crypto.verify ${alg}`, figure(raw), metrics(raw)))
      const r = ratio(verifyCold, raw)
      versus = `${r.toFixed(2)}x raw crypto.verify`
      if (alg === 'ES256') {
        target = '<= 1.3x raw crypto.verify'
        pass = r <= 1.3
      }
    }
    rows.push(
      row('micro', `verify ${alg} cold`, figure(verifyCold), metrics(verifyCold), { versus, target, pass }),
    )

    // --- cached: 100 tokens verified once, then looked up by a fresh header string each time ---
    const cached = createVerifier({
      keys,
      aud: null,
      iss: null,
      clockSkewSeconds: 30,
      cacheMaxEntries: 100_000,
    })
    const hot = tokens.slice(0, 100).map((t) => Buffer.from(t))
    for (const t of tokens.slice(0, 100)) cached.verify(t)
    const hit = measure((i) => cached.verify(freshCopy(hot[i % 100]!)), time)
    rows.push(row('micro', `verify ${alg} cached`, figure(hit), metrics(hit)))
    if (alg === 'HS256') {
      const lru = new LRUCache<string, object>({ max: 100_000 })
      for (const t of tokens.slice(0, 100)) lru.set(t, { t })
      const lruHit = measure((i) => lru.get(freshCopy(hot[i % 100]!)), time)
      rows.push(
        row(
          'micro',
          `baseline: lru-cache hit, ${hot[0]!.length}-byte string key`,
          figure(lruHit),
          metrics(lruHit),
          {
            versus: `verify cached is ${(lruHit.nsPerOp / hit.nsPerOp).toFixed(1)}x faster`,
          },
        ),
      )
    }
    await cold.close()
    await cached.close()
  }

  // --- role mapping ------------------------------------------------------------------------------
  log('role')
  const baseConfig = options.config({})
  const roles = createRoleMapper(baseConfig.role)
  const tokenClaims = supabaseClaims({ id: 'u', sessionId: 's' }, 1)
  const user = { appMetadata: { provider: 'email', role: 'authenticated' }, role: 'authenticated' }
  const roleT = measure(() => roles.mapRole(tokenClaims, user), time)
  rows.push(row('micro', 'role mapping', figure(roleT), metrics(roleT)))

  // --- minting ----------------------------------------------------------------------------------
  // Distinct tokens, cycled: the inputs are not all cache-hot. Each user gets its own record object,
  // sharing an equal app_metadata object, as the claims store hands them out.
  const hsVerifier = createVerifier({
    keys: parseKeySet(INBOUND_SECRET, { isBase64: false }),
    aud: null,
    iss: null,
    clockSkewSeconds: 30,
    cacheMaxEntries: 0,
  })
  const mintCount = 20_000
  const verified: VerifiedToken[] = tokensFor('HS256', mintCount, null).map(
    (t) => hsVerifier.verify(t) as VerifiedToken,
  )
  const nv = verified.length
  const appA = { provider: 'email', role: 'authenticated' }
  const appB = { provider: 'phone', role: 'authenticated' }
  const userA = verified.map(() => ({ appMetadata: appA, role: null }))
  const userB = verified.map(() => ({ appMetadata: appB, role: null }))
  for (const alg of ['HS256', 'ES256'] as const) {
    log(`mint ${alg}`)
    const pair = alg === 'HS256' ? null : generateKeyPairJwk('ES256')
    const key = await importSigningKey(pair === null ? INBOUND_SECRET : JSON.stringify(pair.privateJwk), {
      isBase64: false,
      kid: null,
    })
    // First mint, as the verify cold row: a bound of 200 kept slots while 20,000 tokens cycle, so
    // the minter's own bound has emptied a token's slot by the time it comes round again, and every
    // call mints from the token's claims (reading them and producing every byte of the payload).
    // The cost of keeping each new slot is included; the row after it keeps every slot.
    const minter = createMinter({ key, mint: { ...baseConfig.mint, cacheMaxEntries: 200 } })
    const first = (i: number) =>
      minter.authorization(verified[i % nv]!, userA[i % nv]!, 'authenticated', null)
    const mintCold = measure(first, time)
    const inputs = verified.map((_, i) => splitToken(first(i).slice(7)).input)
    let raw: Timing
    if (pair === null) {
      const secret = createSecretKey(Buffer.from(INBOUND_SECRET))
      raw = measure(
        (i) =>
          createHmac('sha256', secret)
            .update(inputs[i % nv]!)
            .digest('base64url'),
        time,
      )
    } else {
      const keyInput = { key: pair.privateKey, dsaEncoding: 'ieee-p1363' as const }
      const buffers = inputs.map((s) => Buffer.from(s))
      raw = measure((i) => sign('sha256', buffers[i % nv]!, keyInput), time)
    }
    const what = pair === null ? 'raw HMAC-SHA256' : 'raw crypto.sign ES256'
    rows.push(row('micro', `baseline: ${what} of the minted signing input`, figure(raw), metrics(raw)))
    const r = ratio(mintCold, raw)
    rows.push(
      row('micro', `mint ${alg} cold`, figure(mintCold), metrics(mintCold), {
        versus: `${r.toFixed(2)}x ${what}`,
        target: pair === null ? '<= 2x raw HMAC' : '',
        pass: pair === null ? r <= 2 : null,
      }),
    )
    if (pair === null) {
      // The same first mint with every token's slot kept (a bound above the 20,000 tokens), each
      // slot emptied just before its token comes round: each new token string now lives until the
      // next pass, long enough to be promoted, and the collector's work for that is included.
      const keeper = createMinter({ key, mint: { ...baseConfig.mint, cacheMaxEntries: 2 * nv } })
      const firstKept = (i: number) => {
        const v = verified[i % nv]!
        v.minted = undefined
        return keeper.authorization(v, userA[i % nv]!, 'authenticated', null)
      }
      const kept = measure(firstKept, time)
      rows.push(
        row('micro', 'mint HS256 cold, all 20,000 minted tokens kept', figure(kept), metrics(kept), {
          versus: `${ratio(kept, raw).toFixed(2)}x raw HMAC-SHA256`,
        }),
      )
      // Re-sign: each pass over the tokens alternates the user record, so every call finds the slot
      // minted for the other record and signs again (the splice path).
      const resign = measure(
        (i) =>
          keeper.authorization(
            verified[i % nv]!,
            Math.floor(i / nv) % 2 === 0 ? userA[i % nv]! : userB[i % nv]!,
            'authenticated',
            null,
          ),
        time,
      )
      const rr = ratio(resign, raw)
      rows.push(
        row('micro', 'mint HS256 re-sign (user record changed)', figure(resign), metrics(resign), {
          versus: `${rr.toFixed(2)}x raw HMAC-SHA256`,
        }),
      )
      const reused = measure(
        (i) => keeper.authorization(verified[i % nv]!, userA[i % nv]!, 'authenticated', null),
        time,
      )
      rows.push(row('micro', 'mint reused (same token, user, role)', figure(reused), metrics(reused)))
    }
  }
  for (const v of verified) v.minted = undefined
  await hsVerifier.close()

  // --- the whole per-request decision on the cached path ----------------------------------------
  // With the 100 users of the load test, and with DECISION_USERS: a working set (tokens, minted
  // tokens, cached claims) larger than the CPU's caches, as a gateway with many active users has.
  const configs: Array<[string, Record<string, string>]> = [['claims off', {}]]
  if (options.databaseUrl !== null) configs.unshift(['claims on', { GATEWAY_DB_URL: options.databaseUrl }])
  for (const [label, env] of configs) {
    log(`decision (${label})`)
    const gateway: Gateway = await createGateway(options.config({ ...env, GATEWAY_LOG_LEVEL: 'warn' }))
    await gateway.listen()
    try {
      for (const users of [options.users.slice(0, 100), options.users.slice(0, DECISION_USERS)]) {
        const t = await measureDecision(gateway, users, time)
        const many = users.length > 100
        const name = many
          ? `per-request decision, cached (${label}, ${users.length.toLocaleString('en-US')} users)`
          : `per-request decision, cached (${label})`
        const targeted = !many && (label === 'claims on' || options.databaseUrl === null)
        rows.push(
          row('micro', name, figure(t), metrics(t), {
            target: targeted ? '>= 500k/s' : '',
            pass: targeted ? t.opsPerSec >= 500_000 : null,
          }),
        )
      }
    } finally {
      await gateway.close()
    }
  }
  return rows
}

/**
 * Users in the second decision figure: more than the CPU's caches hold, and within one generation
 * of the minted tokens kept by default (half of GATEWAY_MINT_CACHE_MAX_ENTRIES, 10,000), so every
 * decision still reuses its user's minted token.
 */
export const DECISION_USERS = 4000

/** The cached decision over `users` in turn, each request with a fresh copy of its header. */
async function measureDecision(
  gateway: Gateway,
  users: readonly BenchUser[],
  time: MeasureOptions,
): Promise<Timing> {
  const headers = users.map((u, n) => Buffer.from(`Bearer ${hsToken(u, n)}`))
  const ctx: DecisionContext = { role: null }
  // Every user's first decision (verify, lookup, mint), 100 at a time.
  for (let i = 0; i < headers.length; i += 100) {
    await Promise.all(
      headers
        .slice(i, i + 100)
        .map((h) =>
          gateway.pipeline.authorize(
            { method: 'GET', headers: { authorization: h.toString('latin1') } },
            { role: null },
          ),
        ),
    )
  }
  const req = { method: 'GET', headers: { authorization: '', accept: 'application/json' } }
  const nh = headers.length
  const decide = (i: number) => {
    req.headers.authorization = freshCopy(headers[i % nh]!)
    const out = gateway.pipeline.authorize(req, ctx)
    if (typeof out !== 'string') throw new Error('the cached decision did not answer synchronously')
    return out
  }
  return measure(decide, time)
}
