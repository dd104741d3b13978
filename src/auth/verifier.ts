// Verify: token string -> VerifiedToken (signature, algorithm, exp/nbf/iat/aud/iss), behind a cache of verified tokens.
import { isAscii } from 'node:buffer'
import { verify as cryptoVerify, timingSafeEqual } from 'node:crypto'
import { type ErrorKind, GatewayError } from '../errors/index.js'
import { type Metrics, VERIFY_OUTCOMES, type VerifyOutcome } from '../observability/metrics.js'
import { Hmac, type HmacHash } from './hmac.js'
import { isJwsAlg, type JwsAlg, type KeySource, type VerifyKey } from './key-set.js'
import type { Claims, VerifiedToken, Verifier } from './types.js'

export interface VerifierOptions {
  /** Inbound keys; `null` when none is configured: every token then gets PGRST300. */
  readonly keys: KeySource | null
  /** Expected audience (`jwt-aud`); null or '' = any (PostgREST's `audMatchesCfg`). */
  readonly aud: string | null
  /** Expected issuer (gateway option; PostgREST has none); null = any. */
  readonly iss: string | null
  /** PostgREST's fixed 30 s skew for exp, nbf and iat. */
  readonly clockSkewSeconds: number
  /** Bound on cached verified tokens; 0 disables the cache. */
  readonly cacheMaxEntries: number
  /** Clock in seconds (tests inject a fake one). */
  readonly now?: () => number
  readonly metrics?: Metrics
}

const HMAC_HASH: { readonly [A in JwsAlg]: string | null } = {
  HS256: 'sha256',
  HS384: 'sha384',
  HS512: 'sha512',
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
  EdDSA: null,
}

/** RFC 7518 3.4: ES256 is P-256 with a 64-byte r||s signature, and so on. */
const EC_CURVE: { readonly [A in JwsAlg]?: readonly [curve: string, signatureBytes: number] } = {
  ES256: ['P-256', 64],
  ES384: ['P-384', 96],
  ES512: ['P-521', 132],
}

const OUTCOME: { readonly [K in ErrorKind]?: VerifyOutcome } = {
  JwtSecretMissing: 'no_secret',
  JwtParts: 'malformed',
  JwtCrypto: 'malformed',
  JwtUnsupportedType: 'malformed',
  JwtBadAlgorithm: 'algorithm',
  JwtNoSuitableKey: 'no_key',
  KeysUnavailable: 'no_key',
  JwtBadSignature: 'signature',
  JwtClaimsParse: 'claims',
  JwtExpNotNumber: 'claims',
  JwtNbfNotNumber: 'claims',
  JwtIatNotNumber: 'claims',
  JwtAudNotStringOrArray: 'claims',
  JwtExpired: 'expired',
  JwtNotYetValid: 'not_yet_valid',
  JwtIssuedAtFuture: 'issued_in_future',
  JwtNotInAudience: 'audience',
  JwtIssuerMismatch: 'issuer',
}

/** Strict UTF-8 (aeson rejects invalid UTF-8; Buffer#toString would substitute U+FFFD). */
const UTF8 = new TextDecoder('utf-8', { fatal: true })

const INT64_LIMIT = 2 ** 63

/**
 * PostgREST (Auth/Jwt.hs): `sciToInt = fromMaybe 0 . Sci.toBoundedInteger`. A number that is not
 * integral or does not fit an Int64 counts as 0: `exp: 1.5` or `exp: 1e30` is long expired,
 * `nbf: 1e30` is no restriction. (Doubles cannot tell 2^63 - 1 from 2^63; both count as 0 here.)
 */
function sciToInt(value: number): number {
  return Number.isInteger(value) && value >= -INT64_LIMIT && value < INT64_LIMIT ? value : 0
}

/**
 * Cache key: a 30-bit FNV-1a hash of the last 24 chars (the signature's tail, 144 random bits).
 * Hashing the whole 700-char token for a Map key costs ~1 us per fresh header string; this costs
 * ~20 ns, and an entry is only used when its token string is equal to the presented one.
 */
function tokenHash(token: string): number {
  let hash = 0x811c9dc5 | 0
  const end = token.length
  for (let i = end > 24 ? end - 24 : 0; i < end; i++) hash = Math.imul(hash ^ token.charCodeAt(i), 0x01000193)
  return hash & 0x3fffffff
}

/**
 * JSON.parse stores a `__proto__` key as an own data property: it never touches
 * `Object.prototype`. The claims object gets no prototype, so `claims.constructor` or
 * `claims.toString` is undefined rather than inherited. Copy claims with spread or
 * `structuredClone`, never with `Object.assign(plainObject, claims)`: that would run the
 * `__proto__` setter of the target with the token's value.
 */
function ownClaims(parsed: Record<string, unknown>): Claims {
  return Object.setPrototypeOf(parsed, null) as Claims
}

/**
 * Role claims repeat across users ('authenticated', 'anon', ...): one string each instead of a
 * copy per cached token. Bounded, so tokens with made-up roles cannot grow it.
 */
const ROLES = new Map<string, string>()
const ROLES_ENTRIES = 64

function internRole(role: string): string {
  const known = ROLES.get(role)
  if (known !== undefined) return known
  if (ROLES.size < ROLES_ENTRIES) ROLES.set(role, role)
  return role
}

/**
 * A verified token as cached: the token string (a hit compares all of it), the time claims, and
 * the few claims every request reads. Kept small: one cached token per user, 100k users.
 */
class Verified implements VerifiedToken {
  readonly token: string
  readonly exp: number | null
  readonly nbf: number | null
  readonly iat: number | null
  readonly sub: string | null
  readonly sessionId: string | null
  readonly role: string | null
  /** The parsed JOSE header, shared by every token with the same header text (kid, alg). */
  readonly #header: Header
  /** The mint stage's reuse slot (mint/minter.ts). */
  minted: unknown = undefined
  /** The claims stage's kept entries (claims/store.ts). */
  freshUser: unknown = undefined
  freshSession: unknown = undefined

  constructor(
    token: string,
    header: Header,
    claims: Claims,
    exp: number | null,
    nbf: number | null,
    iat: number | null,
  ) {
    this.token = token
    this.#header = header
    this.exp = exp
    this.nbf = nbf
    this.iat = iat
    const sub = claims['sub']
    this.sub = typeof sub === 'string' && sub.length > 0 ? sub : null
    const sessionId = claims['session_id']
    this.sessionId = typeof sessionId === 'string' ? sessionId : null
    const role = claims['role']
    this.role = typeof role === 'string' && role.length > 0 ? internRole(role) : null
  }

  get kid(): string | null {
    return this.#header.kid
  }

  get alg(): string {
    return this.#header.alg
  }

  /**
   * Parsed again from the token on each read (it verified once, so it parses): keeping ~600 bytes of objects per cached token would cost more memory than the
   * token itself, and only the cold paths read the claims (minting anew, the hook's input, role
   * mapping on a new claims version).
   */
  get claims(): Readonly<Claims> {
    const token = this.token
    const first = token.indexOf('.')
    return ownClaims(
      JSON.parse(
        decodeText(Buffer.from(token.slice(first + 1, token.indexOf('.', first + 1)), 'base64url')),
      ) as Record<string, unknown>,
    )
  }
}

/** UTF-8 text of a payload; ASCII (the usual case) takes the cheaper latin1 path. Throws on invalid UTF-8. */
function decodeText(bytes: Buffer): string {
  return isAscii(bytes) ? bytes.toString('latin1') : UTF8.decode(bytes)
}

/** A token whose header checked out, waiting for its keys (sync for static sets, async for remote). */
interface Pending {
  readonly token: string
  readonly hash: number
  readonly header: Header
  /** Index of the second '.': the signing input is `token[0, second)`, the signature follows it. */
  readonly second: number
  readonly payload: Buffer
}

interface Header {
  readonly alg: JwsAlg
  readonly kid: string | null
}

const HEADER_CACHE_ENTRIES = 256

/**
 * Strict base64url (RFC 7515 2: no padding, URL alphabet only), as jose-jwt's decoder. Node's
 * decoder accepts `+`, `/` and `=` and skips any other character outside the alphabet; a skipped
 * character always shortens the output unless the length is 4n+1, which no encoding produces.
 * Cheaper than a character-class scan or re-encoding (~40 ns on top of the decode).
 */
function decodeBase64Url(text: string): Buffer | null {
  const length = text.length
  if (length % 4 === 1 || text.indexOf('+') !== -1 || text.indexOf('/') !== -1 || text.indexOf('=') !== -1) {
    return null
  }
  const bytes = Buffer.from(text, 'base64url')
  return bytes.length === Math.floor((length * 3) / 4) ? bytes : null
}

/** The JOSE header: jose-jwt `parseJwt` -> `jwtHeader`; every failure is `BadCrypto`, except `alg: none`. */
function parseHeader(headerB64: string, payloadB64: string): Header {
  const bytes = decodeBase64Url(headerB64)
  if (bytes === null) fail('JwtCrypto', 'header is not base64url')
  let header: unknown
  try {
    header = JSON.parse(UTF8.decode(bytes))
  } catch {
    fail('JwtCrypto', 'header is not JSON')
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    fail('JwtCrypto', 'header is not a JSON object')
  }
  const h = header as Record<string, unknown>
  const alg = h['alg']
  if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
    // jose-jwt refuses an unsecured JWT with this text (Jwt.hs `decode`) once its payload has
    // parsed. Any spelling of "none" is refused the same way: no unsecured token passes.
    if (decodeBase64Url(payloadB64) === null) fail('JwtCrypto', 'payload is not base64url')
    throw new GatewayError('JwtBadAlgorithm', {
      details: "JWT is unsecured but expected 'alg' was not 'none'",
    })
  }
  // A header with `enc` is a JWE header (Types.hs); a 3-part token cannot be a JWE.
  if (h['enc'] !== undefined) fail('JwtCrypto', 'JWE header in a 3-part token')
  // A missing or non-string alg makes the header unparseable; a named algorithm PostgREST does not
  // verify (PS*, HS1, a lower-case spelling) is "Wrong or unsupported encoding algorithm".
  if (typeof alg !== 'string') fail('JwtCrypto', 'missing alg')
  if (!isJwsAlg(alg)) fail('JwtBadAlgorithm', 'unsupported alg')
  const kid = h['kid']
  if (kid !== undefined && kid !== null && typeof kid !== 'string') fail('JwtCrypto', 'kid is not a string')
  const typ = h['typ']
  const cty = h['cty']
  if ((typ != null && typeof typ !== 'string') || (cty != null && typeof cty !== 'string')) {
    fail('JwtCrypto', 'typ or cty is not a string')
  }
  // RFC 7515 4.1.11: extensions listed in `crit` must be understood or the JWS rejected; this
  // verifier implements none (jose-jwt ignores `crit`). `b64: false` (RFC 7797) changes the
  // signing input, so such a token is refused too rather than verified the wrong way. Both are
  // reported as "JWT cryptographic operation failed": the token is not a JWS we can process, and
  // "Wrong or unsupported encoding algorithm" would point at `alg`, which is fine.
  if (h['crit'] !== undefined) fail('JwtCrypto', 'crit header parameter is not supported')
  if (h['b64'] !== undefined && h['b64'] !== true) fail('JwtCrypto', 'b64 header parameter is not supported')
  return { alg, kid: typeof kid === 'string' ? kid : null }
}

function fail(kind: ErrorKind, reason?: string): never {
  throw new GatewayError(kind, reason === undefined ? {} : { reason })
}

/** RFC 7515 2: the base64url alphabet. */
const BASE64URL_CHAR = new Uint8Array(128)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_')
  BASE64URL_CHAR[c.charCodeAt(0)] = 1

/**
 * `decodeBase64Url(text.slice(start, end)) !== null` without decoding: every character in the
 * URL alphabet (Node's decoder would skip any other and so shorten the output) and a length that
 * some byte string encodes to.
 */
function isBase64UrlRange(text: string, start: number, end: number): boolean {
  if ((end - start) % 4 === 1) return false
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c > 127 || BASE64URL_CHAR[c] === 0) return false
  }
  return true
}

/**
 * `expected === text.slice(start)` in time that depends only on the lengths (public): the
 * expected MAC must not leak through how soon a comparison stops.
 */
function sameTextConstantTime(expected: string, text: string, start: number): boolean {
  const length = expected.length
  if (text.length - start !== length) return false
  let diff = 0
  for (let i = 0; i < length; i++) diff |= expected.charCodeAt(i) ^ text.charCodeAt(start + i)
  return diff === 0
}

/** One prepared HMAC per (key, hash): keys are imported once, so this stays as small as the key set. */
const HMACS: { readonly [H in HmacHash]: WeakMap<VerifyKey, Hmac> } = {
  sha256: new WeakMap(),
  sha384: new WeakMap(),
  sha512: new WeakMap(),
}

function hmacFor(key: VerifyKey, hashName: HmacHash): Hmac {
  const prepared = HMACS[hashName]
  let hmac = prepared.get(key)
  if (hmac === undefined) {
    hmac = new Hmac(hashName, key.key.export())
    prepared.set(key, hmac)
  }
  return hmac
}

/** Whether `token[second + 1 ..]` signs `token[0, second)` under `key`. */
function signatureValid(key: VerifyKey, alg: JwsAlg, token: string, second: number): boolean {
  try {
    if (key.kind === 'hmac') {
      // The MAC is compared in its base64url text with the token's signature part: no decoding.
      const mac = hmacFor(key, HMAC_HASH[alg] as HmacHash).latin1(token, second)
      if (sameTextConstantTime(mac, token, second + 1)) return true
      // A signature whose last character carries non-zero unused bits decodes to the same bytes
      // (RFC 4648 3.5): compare bytes, as jose-jwt does, before calling it wrong.
      const signature = Buffer.from(token.slice(second + 1), 'base64url')
      const expected = Buffer.from(mac, 'base64url')
      return expected.length === signature.length && timingSafeEqual(expected, signature)
    }
    const input = Buffer.from(token.slice(0, second), 'latin1')
    const signature = Buffer.from(token.slice(second + 1), 'base64url')
    switch (key.kind) {
      case 'rsa':
        return cryptoVerify(HMAC_HASH[alg], input, key.key, signature)
      case 'ec': {
        const fit = EC_CURVE[alg]
        if (fit === undefined || key.curve !== fit[0] || signature.length !== fit[1]) return false
        return cryptoVerify(HMAC_HASH[alg], input, key.ecdsa!, signature)
      }
      case 'okp':
        return cryptoVerify(null, input, key.key, signature)
    }
  } catch {
    // Malformed signature for the key (e.g. wrong length for RSA): jose-jwt's decode gives Nothing.
    return false
  }
}

class TokenVerifier implements Verifier {
  readonly #keys: KeySource | null
  readonly #aud: string | null
  readonly #iss: string | null
  readonly #skew: number
  readonly #now: () => number
  readonly #generation: number
  readonly #headers = new Map<string, Header>()
  #young = new Map<number, Verified>()
  #old = new Map<number, Verified>()
  #epoch: number
  // Metrics: label children bound once; cache hits are tallied in plain integers and flushed
  // (a bound prom-client child's inc() costs ~60 ns, a large share of a cache hit).
  readonly #outcomes: Map<VerifyOutcome, { inc(): void }> | null
  readonly #hitCounter: { inc(n?: number): void } | null
  readonly #missCounter: { inc(n?: number): void } | null
  #pendingHits = 0
  #flushTimer: NodeJS.Timeout | null = null
  #offCollect: (() => void) | null = null

  constructor(options: VerifierOptions) {
    this.#keys = options.keys
    this.#aud = options.aud === '' ? null : options.aud
    this.#iss = options.iss === '' ? null : options.iss
    this.#skew = options.clockSkewSeconds
    this.#now = options.now ?? (() => Date.now() / 1000)
    this.#generation = options.cacheMaxEntries > 0 ? Math.max(1, Math.ceil(options.cacheMaxEntries / 2)) : 0
    this.#epoch = options.keys?.epoch ?? 0
    const metrics = options.metrics
    if (metrics !== undefined) {
      this.#outcomes = new Map()
      for (const outcome of VERIFY_OUTCOMES)
        this.#outcomes.set(outcome, metrics.verifications.labels(outcome))
      this.#hitCounter = metrics.verifyCache.labels('hit')
      this.#missCounter = metrics.verifyCache.labels('miss')
      this.#flushTimer = setInterval(() => this.#flush(), 1000)
      this.#flushTimer.unref()
      // A scrape sees every hit so far, not only those of the last timer tick.
      this.#offCollect = metrics.onCollect(() => this.#flush())
    } else {
      this.#outcomes = null
      this.#hitCounter = null
      this.#missCounter = null
    }
  }

  get size(): number {
    return this.#young.size + this.#old.size
  }

  clear(): void {
    this.#young.clear()
    this.#old.clear()
  }

  async close(): Promise<void> {
    if (this.#flushTimer !== null) clearInterval(this.#flushTimer)
    this.#flushTimer = null
    this.#offCollect?.()
    this.#offCollect = null
    this.#flush()
    this.clear()
  }

  verify(token: string): VerifiedToken | Promise<VerifiedToken> {
    const keys = this.#keys
    if (keys !== null && keys.epoch !== this.#epoch) {
      // A key was removed: tokens it verified must be checked again.
      this.#epoch = keys.epoch
      this.clear()
    }
    const hash = tokenHash(token)
    let entry = this.#young.get(hash)
    if (entry === undefined || entry.token !== token) {
      entry = this.#old.get(hash)
      if (entry !== undefined && entry.token === token) this.#promote(entry, hash)
      else entry = undefined
    }
    if (entry !== undefined) {
      const now = Math.floor(this.#now())
      const skew = this.#skew
      // Time claims are re-checked on every use (PostgREST validates after its cache lookup).
      if (
        (entry.exp !== null && now - skew > entry.exp) ||
        (entry.nbf !== null && now + skew < entry.nbf) ||
        (entry.iat !== null && now + skew < entry.iat)
      ) {
        return this.#hitRejected(entry, now)
      }
      this.#pendingHits++
      return entry
    }
    return this.#cold(token, hash)
  }

  #promote(entry: Verified, hash: number): void {
    this.#old.delete(hash)
    this.#store(entry, hash)
  }

  /** Generational eviction: when the young Map is full it becomes the old one and the old is dropped. */
  #store(entry: Verified, hash: number): void {
    if (this.#generation === 0) return
    if (this.#young.size >= this.#generation) {
      this.#old = this.#young
      this.#young = new Map()
    }
    this.#young.set(hash, entry)
  }

  #hitRejected(entry: Verified, now: number): never {
    const skew = this.#skew
    let kind: ErrorKind
    if (entry.exp !== null && now - skew > entry.exp) {
      // Expired for good: drop it so it does not outlive its token.
      kind = 'JwtExpired'
      const hash = tokenHash(entry.token)
      if (this.#young.get(hash) === entry) this.#young.delete(hash)
    } else if (entry.nbf !== null && now + skew < entry.nbf) kind = 'JwtNotYetValid'
    else kind = 'JwtIssuedAtFuture'
    this.#pendingHits++
    this.#count(kind)
    return fail(kind)
  }

  #count(kind: ErrorKind | 'ok'): void {
    if (this.#outcomes === null) return
    this.#outcomes.get(kind === 'ok' ? 'ok' : (OUTCOME[kind] ?? 'malformed'))!.inc()
  }

  #flush(): void {
    if (this.#hitCounter === null || this.#pendingHits === 0) return
    this.#hitCounter.inc(this.#pendingHits)
    this.#pendingHits = 0
  }

  #cold(token: string, hash: number): VerifiedToken | Promise<VerifiedToken> {
    if (this.#missCounter !== null) {
      this.#missCounter.inc()
      this.#flush()
    }
    let pending: Pending
    let candidates: readonly VerifyKey[] | Promise<readonly VerifyKey[]>
    try {
      pending = this.#parse(token, hash)
      candidates = this.#keys!.candidates(pending.header.alg, pending.header.kid)
    } catch (err) {
      return this.#failed(err)
    }
    if (!(candidates instanceof Promise)) return this.#finish(pending, candidates)
    return candidates.then(
      (list) => this.#finish(pending, list),
      (err: unknown) => this.#failed(err),
    )
  }

  #failed(err: unknown): never {
    if (err instanceof GatewayError) this.#count(err.kind)
    throw err
  }

  /**
   * Everything up to key selection, in jose-jwt's order (Jose/Internal/Parser.hs `parseJwt`, whose
   * every failure is `BadCrypto`): part count, header base64url and JSON, `alg`, then payload and
   * signature base64url.
   */
  #parse(token: string, hash: number): Pending {
    if (this.#keys === null) fail('JwtSecretMissing')
    // PostgREST (Auth/Jwt.hs `hasThreeParts`): `length $ BS.split '.' token` must be 3; a JWE has 5.
    const first = token.indexOf('.')
    const second = first === -1 ? -1 : token.indexOf('.', first + 1)
    if (second === -1 || token.indexOf('.', second + 1) !== -1) {
      let parts = 1
      for (let i = token.indexOf('.'); i !== -1; i = token.indexOf('.', i + 1)) parts++
      throw new GatewayError('JwtParts', { message: `Expected 3 parts in JWT; got ${parts}` })
    }
    const headerB64 = token.slice(0, first)
    const payloadB64 = token.slice(first + 1, second)
    // Headers repeat across tokens (same alg, kid, typ): parse each distinct one once.
    let header = this.#headers.get(headerB64)
    if (header === undefined) {
      header = parseHeader(headerB64, payloadB64)
      if (this.#headers.size >= HEADER_CACHE_ENTRIES) this.#headers.clear()
      this.#headers.set(headerB64, header)
    }
    const payload = decodeBase64Url(payloadB64)
    if (payload === null) fail('JwtCrypto', 'payload is not base64url')
    if (!isBase64UrlRange(token, second + 1, token.length)) fail('JwtCrypto', 'signature is not base64url')
    return { token, hash, header, second, payload }
  }

  #finish(pending: Pending, candidates: readonly VerifyKey[]): VerifiedToken {
    try {
      return this.#complete(pending, candidates)
    } catch (err) {
      return this.#failed(err)
    }
  }

  #complete(pending: Pending, candidates: readonly VerifyKey[]): VerifiedToken {
    // jose-jwt `checkKeys []`: KeyError "No suitable key was found to decode the JWT".
    if (candidates.length === 0) fail('JwtNoSuitableKey')
    let valid = false
    for (let i = 0; i < candidates.length && !valid; i++) {
      valid = signatureValid(candidates[i]!, pending.header.alg, pending.token, pending.second)
    }
    // jose-jwt: KeyError "None of the keys was able to decode the JWT".
    if (!valid) fail('JwtBadSignature')

    // PostgREST `decodeClaims`: the payload must decode to a JSON object, else ParsingClaimsFailed.
    let parsed: unknown
    try {
      parsed = JSON.parse(decodeText(pending.payload))
    } catch {
      fail('JwtClaimsParse')
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) fail('JwtClaimsParse')
    const claims = ownClaims(parsed as Record<string, unknown>)

    // PostgREST `checkForErrors`: exp, nbf, iat, aud in this order, the first failure wins; for
    // each, absent or null passes, a present non-number is a type error, then the value is checked.
    const now = Math.floor(this.#now())
    const skew = this.#skew
    const exp = timeClaim(claims['exp'], 'JwtExpNotNumber')
    if (exp !== null && now - skew > exp) fail('JwtExpired')
    const nbf = timeClaim(claims['nbf'], 'JwtNbfNotNumber')
    if (nbf !== null && now + skew < nbf) fail('JwtNotYetValid')
    const iat = timeClaim(claims['iat'], 'JwtIatNotNumber')
    if (iat !== null && now + skew < iat) fail('JwtIssuedAtFuture')
    const aud = claims['aud']
    if (aud !== undefined && aud !== null) {
      if (typeof aud === 'string') {
        if (this.#aud !== null && aud !== this.#aud) fail('JwtNotInAudience')
      } else if (Array.isArray(aud)) {
        let match = aud.length === 0 || this.#aud === null
        for (const item of aud) {
          if (typeof item !== 'string') fail('JwtAudNotStringOrArray')
          if (item === this.#aud) match = true
        }
        if (!match) fail('JwtNotInAudience')
      } else {
        fail('JwtAudNotStringOrArray')
      }
    }
    if (this.#iss !== null && claims['iss'] !== this.#iss) fail('JwtIssuerMismatch')

    const verified = new Verified(pending.token, pending.header, claims, exp, nbf, iat)
    this.#store(verified, pending.hash)
    this.#count('ok')
    return verified
  }
}

function timeClaim(value: unknown, typeError: ErrorKind): number | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'number') fail(typeError)
  return sciToInt(value)
}

/**
 * The verify stage. `verify(token)` returns synchronously on a cache hit and for static keys;
 * a Promise only when a remote key set has to be fetched first. Failures throw GatewayError.
 *
 * Cached: successful verifications only, by exact token string, at most `cacheMaxEntries`
 * (generational: two Maps, the older dropped when the newer fills). Failures are not cached, as
 * in PostgREST (`notCachingErrors`): a forged token costs a verification each time, but a cache of
 * failures could be filled by anyone, and the time claims that make most failures temporary are
 * re-checked on hits anyway.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  return new TokenVerifier(options)
}
