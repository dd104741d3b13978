// Security: property-based tests over Authorization values and token contents, through the real verifier and the real pipeline.
import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseKeySet } from '../../../src/auth/key-set.js'
import type { VerifiedToken, Verifier } from '../../../src/auth/types.js'
import { createVerifier } from '../../../src/auth/verifier.js'
import { ERRORS, GatewayError } from '../../../src/errors/index.js'
import { b64url, generateKeyPairJwk, octJwk, signHs, signWithKey } from '../../support/tokens.js'
import {
  get,
  INBOUND_SECRET,
  type InProcessGateway,
  type RecordingUpstream,
  startInProcessGateway,
  startRecordingUpstream,
} from './support.js'

/** Bound on one case: a cold RSA verification takes well under a millisecond. */
const CASE_MS = 250
const SUB = 'a11ce000-0000-4000-8000-000000000001'
const now = () => Math.floor(Date.now() / 1000)

const rsa = generateKeyPairJwk('RS256', { kid: 'rsa' })
const ec = generateKeyPairJwk('ES256', { kid: 'ec' })
const ed = generateKeyPairJwk('EdDSA', { kid: 'ed' })
const JWKS = JSON.stringify({ keys: [octJwk(INBOUND_SECRET), rsa.publicJwk, ec.publicJwk, ed.publicJwk] })

/** The answers a token may get from the verify stage: PostgREST's auth failures, nothing else. */
const VERIFY_CODES = new Set(['PGRST301', 'PGRST303'])
/** What the whole decision may answer with (no database, anonymous allowed): those, or a refused role. */
const DECISION_CODES = new Set(['PGRST301', 'PGRST303', 'GW201'])
const CONTRACT_MESSAGES = new Set(Object.values(ERRORS).map((spec) => spec.message))

// --- arbitraries ---------------------------------------------------------------------------------

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const base64urlText = fc.string({ unit: fc.constantFrom(...BASE64URL), maxLength: 120 })
const base64urlBytes = fc
  .uint8Array({ maxLength: 300 })
  .map((bytes) => Buffer.from(bytes).toString('base64url'))
/** A part that is base64url of JSON, of bytes, or of arbitrary alphabet characters. */
const part = fc.oneof(
  base64urlText,
  base64urlBytes,
  fc.jsonValue().map((value) => b64url(JSON.stringify(value) ?? 'null')),
)
const dottedParts = fc.array(part, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.'))

/** Header values as Node hands them over: latin1 text (one char per byte). */
const latin1 = fc.string({
  unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
  maxLength: 200,
})
const anyString = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  latin1,
)

/** A value of a claim that matters, of any JSON type; absent most often, so that later checks are reached. */
const claimValue = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  fc.jsonValue({ maxDepth: 2 }),
  fc.integer(),
  fc.double(),
  fc.constantFrom(
    now() + 3600,
    now() - 3600,
    0,
    -1,
    Number.MAX_VALUE,
    2 ** 63,
    'authenticated',
    'service_role',
    null,
  ),
)
const claimsObject = fc
  .record(
    {
      sub: fc.oneof(fc.constant(SUB), fc.string({ maxLength: 40 }), claimValue),
      exp: fc.oneof({ weight: 3, arbitrary: fc.constant(now() + 3600) }, claimValue),
      nbf: claimValue,
      iat: claimValue,
      aud: fc.oneof(
        { weight: 3, arbitrary: fc.constant('authenticated') },
        claimValue,
        fc.array(fc.oneof(fc.string(), fc.constant('authenticated'), fc.integer())),
      ),
      role: claimValue,
      app_metadata: fc.oneof(
        claimValue,
        fc.record({ role: claimValue }),
        fc.dictionary(fc.string(), claimValue),
      ),
      session_id: claimValue,
    },
    { requiredKeys: [] },
  )
  .chain((known) =>
    fc
      .dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }))
      .map((extra) => ({ ...extra, ...known })),
  )
const payload = fc.oneof({ weight: 4, arbitrary: claimsObject }, fc.jsonValue({ maxDepth: 3 }))
const wildHeader = fc
  .record(
    {
      alg: fc.oneof(
        fc.constantFrom('HS256', 'HS384', 'RS256', 'ES256', 'EdDSA', 'none', 'PS256', 'hs256'),
        fc.jsonValue(),
      ),
      kid: fc.oneof(fc.constantFrom('rsa', 'ec', 'ed', '../../x', "' or 1=1"), fc.jsonValue()),
      typ: fc.oneof(fc.constant('JWT'), fc.jsonValue()),
      crit: fc.jsonValue(),
      b64: fc.jsonValue(),
      jku: fc.constant('http://127.0.0.1:1/jwks'),
    },
    { requiredKeys: [] },
  )
  .chain((known) =>
    fc
      .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }))
      .map((extra) => ({ ...extra, ...known })),
  )

const header = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ alg: 'HS256', typ: 'JWT' }) },
  { weight: 1, arbitrary: wildHeader },
)

/** Tokens signed with the real HMAC secret over random headers and payloads: the checks after the signature run. */
const signedRandom = fc.tuple(header, payload).map(([h, p]) => {
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(p) ?? 'null')}`
  return `${input}.${createHmac('sha256', INBOUND_SECRET).update(input).digest('base64url')}`
})

function validTokens(): string[] {
  const claims = { sub: SUB, aud: 'authenticated', exp: now() + 3600, iat: now(), role: 'authenticated' }
  return [
    signHs(claims, INBOUND_SECRET),
    signWithKey(claims, rsa.privateKey, 'RS256', { kid: 'rsa' }),
    signWithKey(claims, ec.privateKey, 'ES256', { kid: 'ec' }),
    signWithKey(claims, ed.privateKey, 'EdDSA', { kid: 'ed' }),
  ]
}

const VALID = validTokens()

/** A valid token with one bit flipped in the decoded bytes of one part, or one encoded char replaced. */
const mutated = fc
  .tuple(
    fc.constantFrom(...VALID),
    fc.integer({ min: 0, max: 2 }),
    fc.nat(),
    fc.integer({ min: 0, max: 7 }),
    fc.boolean(),
    fc.constantFrom(...`${BASE64URL}+/=.%~ \t`),
  )
  .map(([token, index, position, bit, decoded, char]) => {
    const parts = token.split('.')
    const target = parts[index]!
    if (decoded) {
      const bytes = Buffer.from(target, 'base64url')
      if (bytes.length > 0) bytes[position % bytes.length]! ^= 1 << bit
      parts[index] = bytes.toString('base64url')
    } else if (target.length > 0) {
      const at = position % target.length
      parts[index] = target.slice(0, at) + char + target.slice(at + 1)
    }
    return parts.join('.')
  })
  .filter((token) => !VALID.includes(token))

const token = fc.oneof(dottedParts, { weight: 3, arbitrary: signedRandom }, mutated, anyString)

/** Authorization values: the scheme in odd forms, then any token, or anything at all. */
const authorization = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('Bearer ', 'bearer ', 'BEARER\t', 'Bearer  ', 'Bearer', 'Basic ', 'Bearer\u00a0', ''),
      token,
    )
    .map(([scheme, t]) => scheme + t),
  anyString,
)

// --- the verifier alone --------------------------------------------------------------------------

function outcomeOf(verifier: Verifier, input: string): { ok: VerifiedToken } | { error: GatewayError } {
  try {
    const result = verifier.verify(input)
    if (result instanceof Promise) throw new Error('a static key set answered asynchronously')
    return { ok: result }
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return { error: err }
  }
}

describe('verify: any token ends in a contract answer', () => {
  const verifier = createVerifier({
    keys: parseKeySet(JWKS, { isBase64: false }),
    aud: 'authenticated',
    iss: null,
    clockSkewSeconds: 30,
    cacheMaxEntries: 1000,
  })

  it('passes, or throws a PostgREST auth error (401 PGRST301/303), synchronously and quickly', () => {
    const seen = new Set<string>()
    fc.assert(
      fc.property(token, (input) => {
        const started = performance.now()
        const outcome = outcomeOf(verifier, input)
        expect(performance.now() - started).toBeLessThan(CASE_MS)
        seen.add('error' in outcome ? outcome.error.kind : 'ok')
        if ('error' in outcome) {
          expect(VERIFY_CODES.has(outcome.error.code)).toBe(true)
          expect(outcome.error.status).toBe(401)
          // "Expected 3 parts in JWT; got N" is the one message made per instance.
          if (outcome.error.kind !== 'JwtParts')
            expect(CONTRACT_MESSAGES.has(outcome.error.message)).toBe(true)
        } else {
          expect(outcome.ok.token).toBe(input)
        }
        // The same token gets the same answer again (now possibly from the cache).
        const again = outcomeOf(verifier, input)
        expect('ok' in again).toBe('ok' in outcome)
        if ('error' in again && 'error' in outcome) expect(again.error.kind).toBe(outcome.error.kind)
      }),
      { numRuns: 3000 },
    )
    // The generators reach every stage of verification, success included.
    for (const kind of [
      'ok',
      'JwtParts',
      'JwtCrypto',
      'JwtBadAlgorithm',
      'JwtNoSuitableKey',
      'JwtBadSignature',
      'JwtClaimsParse',
      'JwtExpired',
      'JwtExpNotNumber',
      'JwtAudNotStringOrArray',
      'JwtNotInAudience',
    ]) {
      expect(seen).toContain(kind)
    }
  })

  it('no mutated valid token verifies', () => {
    fc.assert(
      fc.property(mutated, (input) => {
        // A flipped bit that decodes to the same bytes (the unused low bits of the last char) keeps
        // the token valid in every JWS library; anything else must fail.
        const outcome = outcomeOf(verifier, input)
        if ('ok' in outcome) {
          const [h, p, sig] = input.split('.') as [string, string, string]
          const original = VALID.find((t) => t.startsWith(`${h}.${p}.`))
          expect(original).toBeDefined()
          expect(Buffer.from(sig, 'base64url')).toEqual(Buffer.from(original!.split('.')[2]!, 'base64url'))
        }
      }),
      { numRuns: 2000 },
    )
  })
})

// --- the whole decision, in process --------------------------------------------------------------

let upstream: RecordingUpstream
let gateway: InProcessGateway

beforeAll(async () => {
  upstream = await startRecordingUpstream()
  gateway = await startInProcessGateway(upstream.url, {
    GATEWAY_JWT_SECRET: JWKS,
    GATEWAY_JWT_AUD: 'authenticated',
  })
})

afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
})

describe('pipeline.authorize: any Authorization value ends in a contract answer', () => {
  it('anonymous, a minted Bearer token, or a 4xx from the table; never a 5xx or another exception', async () => {
    const seen = new Set<string>()
    await fc.assert(
      fc.asyncProperty(authorization, async (value) => {
        const ctx = { role: null as string | null }
        const started = performance.now()
        try {
          const result = await gateway.gateway.pipeline.authorize(
            { method: 'GET', headers: { authorization: value } },
            ctx,
          )
          seen.add(result === null ? 'anonymous' : 'minted')
          if (result !== null) {
            expect(result.startsWith('Bearer ')).toBe(true)
            expect(result.split('.')).toHaveLength(3)
            expect(ctx.role).toBe('authenticated')
          }
        } catch (err) {
          if (!(err instanceof GatewayError)) throw err
          seen.add(err.code)
          expect(DECISION_CODES.has(err.code)).toBe(true)
          expect(err.status).toBeLessThan(500)
        }
        expect(performance.now() - started).toBeLessThan(CASE_MS)
      }),
      { numRuns: 3000 },
    )
    expect([...seen].sort()).toEqual(['GW201', 'PGRST301', 'PGRST303', 'anonymous', 'minted'])
  })
})

describe('through HTTP: any header-safe Authorization value', () => {
  /** Node refuses to send CR, LF and NUL in a header value; everything else in latin1 goes. */
  const headerSafe = authorization
    .map((value) => value.replace(/[^\t\x20-\x7e\x80-\xff]/g, ''))
    .filter((value) => value.trim() === value)

  it('is answered with 200 (forwarded) or a PostgREST-shaped 401/403 JSON body, and refusals are never forwarded', async () => {
    await fc.assert(
      fc.asyncProperty(headerSafe, async (value) => {
        const before = upstream.requests.length
        const res = await get(`${gateway.url}/items`, value === '' ? {} : { authorization: value }, 2000)
        if (res.status === 200) {
          expect(upstream.requests.length).toBe(before + 1)
          return
        }
        expect([401, 403]).toContain(res.status)
        const body = JSON.parse(res.body) as Record<string, unknown>
        expect(Object.keys(body)).toEqual(['code', 'details', 'hint', 'message'])
        expect(DECISION_CODES.has(body['code'] as string)).toBe(true)
        expect(upstream.requests.length).toBe(before)
      }),
      { numRuns: 300 },
    )
  })
})
