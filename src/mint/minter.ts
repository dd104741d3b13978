// Mint stage: claims + role -> the token PostgREST trusts, reused while nothing changed.
import type { Claims, VerifiedToken } from '../auth/types.js'
import type { MintConfig } from '../config/types.js'
import type { Metrics } from '../observability/metrics.js'
import type { CurrentUser } from '../role/map-role.js'
import type { SigningKey } from './signing-key.js'

export interface Minter {
  /**
   * The `Authorization` value for PostgREST. For the same verified token, user record, hook
   * result and role it returns the same string without signing again, so PostgREST's JWT cache
   * (keyed by token string) keeps hitting.
   */
  authorization(
    token: VerifiedToken,
    user: CurrentUser | null,
    role: string,
    hookClaims: Readonly<Claims> | null,
  ): string
  /**
   * The decision made last time for these inputs (the role it mapped to and the token), while it
   * still holds: the cached request path then maps no role and reads no claims.
   */
  reuse(
    token: VerifiedToken,
    user: CurrentUser | null,
    hookClaims: Readonly<Claims> | null,
  ): { readonly role: string; readonly authorization: string } | undefined
  /** The claims a minted token carries (for tests and the hook stage). */
  claimsFor(
    token: VerifiedToken,
    user: CurrentUser | null,
    role: string,
    hookClaims: Readonly<Claims> | null,
  ): Claims
  readonly key: SigningKey
}

/**
 * The reuse slot, kept on the verified token itself (`VerifiedToken.minted`) rather than in a side
 * table: one object per cached user instead of a WeakMap entry as well. The inputs it was minted
 * from are compared by identity.
 */
class Minted {
  /** The minter that wrote it: a reloaded minter (new key, new claim list) never reads an old slot. */
  readonly by: object
  readonly user: CurrentUser | null
  readonly role: string
  readonly hook: Readonly<Claims> | null
  readonly authorization: string
  /** When to sign again, in seconds (for tokens whose exp the gateway chose). */
  readonly renewAt: number
  /**
   * Where the `app_metadata` and `role` values sit in the minted payload JSON, as UTF-8 byte
   * offsets packed `start * 2^15 + end` (-1: absent, or a payload of 32 KiB or more). Signing
   * again for a new user record then splices the new values into the old payload instead of
   * parsing the inbound token and serialising every claim again.
   */
  readonly appAt: number
  readonly roleAt: number

  constructor(
    by: object,
    user: CurrentUser | null,
    role: string,
    hook: Readonly<Claims> | null,
    authorization: string,
    renewAt: number,
    appAt: number,
    roleAt: number,
  ) {
    this.by = by
    this.user = user
    this.role = role
    this.hook = hook
    this.authorization = authorization
    this.renewAt = renewAt
    this.appAt = appAt
    this.roleAt = roleAt
  }
}

// Tokens without exp get one chosen here; renew well before PostgREST's 30 s skew runs out.
const RENEW_MARGIN_SECONDS = 60
const SPAN = 2 ** 15

function span(start: number, end: number): number {
  return end < SPAN ? start * SPAN + end : -1
}

const APP_KEY = '"app_metadata":'
const ROLE_KEY = '"role":'
const EXP_KEY = '"exp":'
const OPEN = 0x7b
const CLOSE = 0x7d
const COMMA = 0x2c
const DOT = 0x2e

/** A reusable byte buffer that grows to the largest payload seen. */
class Scratch {
  bytes: Buffer
  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size)
  }
  /** Room for `length` bytes at `at`, keeping what is before it. */
  reserve(at: number, length: number): Buffer {
    if (at + length > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(at + length, this.bytes.length * 2))
      this.bytes.copy(grown, 0, 0, at)
      this.bytes = grown
    }
    return this.bytes
  }
  text(at: number, text: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    return at + this.reserve(at, text.length * 3).write(text, at, 'utf8')
  }
}

export function createMinter(options: {
  key: SigningKey
  mint: MintConfig
  metrics?: Metrics
  onOversize?: (bytes: number) => void
  now?: () => number
}): Minter {
  const { key, mint } = options
  const header: Record<string, string> = { alg: key.alg, typ: 'JWT' }
  if (key.kid !== null) header['kid'] = key.kid
  const encodedHeader = Buffer.from(JSON.stringify(header)).toString('base64url')
  const allowedClaims = mint.claimsAllowed === null ? null : new Set([...mint.claimsAllowed, 'role', 'exp'])
  const appAllowed = allowedClaims === null || allowedClaims.has('app_metadata')
  const now = options.now ?? (() => Date.now() / 1000)
  const signed = options.metrics?.minted.labels('signed')
  const reused = options.metrics?.minted.labels('reused')
  const oversize = options.metrics?.mintedOversize
  const self = {}
  // The payload JSON is built in `json`; the whole `Bearer <header>.<payload>.<signature>` value is
  // assembled in `out` (whose prefix is written once) and read out as one flat string: no rope of
  // concatenated pieces is kept alive by the reuse slot.
  const json = new Scratch(2048)
  const previous = new Scratch(2048)
  const prefix = `Bearer ${encodedHeader}.`
  const out = new Scratch(4096)
  out.bytes.write(prefix, 0, 'latin1')
  let appAt = -1
  let roleAt = -1

  function claimsFor(
    token: VerifiedToken,
    user: CurrentUser | null,
    role: string,
    hookClaims: Readonly<Claims> | null,
  ): Claims {
    const source = hookClaims ?? token.claims
    const out: Claims = {}
    for (const name in source) {
      if (allowedClaims !== null && !allowedClaims.has(name)) continue
      out[name] = source[name]
    }
    if (user !== null && hookClaims === null && appAllowed) {
      out['app_metadata'] = user.appMetadata
    }
    out['role'] = role
    out['exp'] = expFor(token, source)
    return out
  }

  /** Never later than the inbound token's exp; a token without exp gets the configured lifetime. */
  function expFor(token: VerifiedToken, source: Readonly<Claims>): number {
    const claimed = source['exp']
    let exp = token.exp ?? Math.floor(now()) + mint.ttlSeconds
    if (typeof claimed === 'number' && claimed < exp) exp = claimed
    return exp
  }

  /**
   * `JSON.stringify(claimsFor(...))` written into `json`, byte for byte: the claims in the source's
   * order, each run of copied claims serialised in one call, `app_metadata`, `role` and `exp`
   * written where they stand (or appended in that order). Records where the variable values are.
   */
  function serialize(
    source: Readonly<Claims>,
    user: CurrentUser | null,
    role: string,
    exp: number,
    overrideApp: boolean,
  ): number {
    let run: Claims | null = null
    let n = 1
    json.bytes[0] = OPEN
    let sawApp = false
    let sawRole = false
    let sawExp = false
    const flush = (): void => {
      if (run === null) return
      const text = JSON.stringify(run)
      run = null
      if (text.length <= 2) return
      if (n > 1) json.bytes[n++] = COMMA
      n = json.text(n, text.slice(1, -1))
    }
    const member = (name: string, value: string): number => {
      flush()
      if (n > 1) json.reserve(n, 1)[n++] = COMMA
      n = json.text(n, name)
      const start = n
      n = json.text(n, value)
      return span(start, n)
    }
    appAt = -1
    for (const name in source) {
      if (allowedClaims !== null && !allowedClaims.has(name)) continue
      if (name === 'app_metadata' && overrideApp) {
        appAt = member(APP_KEY, JSON.stringify(user!.appMetadata))
        sawApp = true
      } else if (name === 'role') {
        roleAt = member(ROLE_KEY, JSON.stringify(role))
        sawRole = true
      } else if (name === 'exp') {
        member(EXP_KEY, JSON.stringify(exp))
        sawExp = true
      } else {
        // A plain object, as claimsFor's: a `__proto__` claim goes to its prototype setter and is
        // left out, as JSON.stringify of the copied claims always did.
        run ??= {}
        run[name] = source[name]
      }
    }
    flush()
    if (overrideApp && !sawApp) appAt = member(APP_KEY, JSON.stringify(user!.appMetadata))
    if (!sawRole) roleAt = member(ROLE_KEY, JSON.stringify(role))
    if (!sawExp) member(EXP_KEY, JSON.stringify(exp))
    json.reserve(n, 1)[n++] = CLOSE
    return n
  }

  /**
   * The previous payload of the same token with new `app_metadata` and `role` values: everything
   * else it carries depends on the token alone (same source claims, same exp).
   */
  function splice(previousToken: Minted, user: CurrentUser | null, role: string): number {
    const authorization = previousToken.authorization
    const length = previous
      .reserve(0, authorization.length)
      .write(authorization.slice(prefix.length, authorization.lastIndexOf('.')), 0, 'base64url')
    const old = previous.bytes
    const app = previousToken.appAt
    const at = previousToken.roleAt
    let n = 0
    let from = 0
    appAt = -1
    roleAt = -1
    // The one or two values in payload order.
    const first = app !== -1 && app < at ? app : at
    const second = first === at ? app : at
    for (let k = 0; k < 2; k++) {
      const packed = k === 0 ? first : second
      if (packed === -1) continue
      const start = Math.floor(packed / SPAN)
      const end = packed % SPAN
      json.reserve(n, start - from)
      n += old.copy(json.bytes, n, from, start)
      const valueStart = n
      if (packed === at) {
        n = json.text(n, JSON.stringify(role))
        roleAt = span(valueStart, n)
      } else {
        n = json.text(n, JSON.stringify(user!.appMetadata))
        appAt = span(valueStart, n)
      }
      from = end
    }
    json.reserve(n, length - from)
    n += old.copy(json.bytes, n, from, length)
    return n
  }

  function sign(jsonLength: number): string {
    const payload = json.bytes.toString('base64url', 0, jsonLength)
    let end = prefix.length + payload.length
    const bytes = out.reserve(prefix.length, payload.length + 200)
    bytes.write(payload, prefix.length, 'latin1')
    const signature =
      key.hmac !== null
        ? key.hmac.bytes(bytes, 7, end, 'base64url')
        : key.sign(bytes.toString('latin1', 7, end))
    const whole = out.reserve(end, signature.length + 1)
    whole[end++] = DOT
    end += whole.write(signature, end, 'latin1')
    return whole.toString('latin1', 0, end)
  }

  function current(
    token: VerifiedToken,
    user: CurrentUser | null,
    hookClaims: Readonly<Claims> | null,
  ): Minted | undefined {
    const previous = token.minted
    if (
      previous instanceof Minted &&
      previous.by === self &&
      previous.user === user &&
      previous.hook === hookClaims &&
      (token.exp !== null || now() < previous.renewAt)
    ) {
      return previous
    }
    return undefined
  }

  return {
    key,
    claimsFor,
    reuse(token, user, hookClaims) {
      const previous = current(token, user, hookClaims)
      if (previous !== undefined) reused?.inc()
      return previous
    },
    authorization(token, user, role, hookClaims) {
      const last = token.minted
      if (
        last instanceof Minted &&
        last.by === self &&
        last.user === user &&
        last.hook === hookClaims &&
        last.role === role &&
        (token.exp !== null || now() < last.renewAt)
      ) {
        reused?.inc()
        return last.authorization
      }
      const overrideApp = user !== null && hookClaims === null && appAllowed
      let length: number
      let exp: number
      if (
        last instanceof Minted &&
        last.by === self &&
        last.hook === null &&
        hookClaims === null &&
        token.exp !== null &&
        last.roleAt !== -1 &&
        (last.appAt !== -1) === overrideApp
      ) {
        // Same token, same source claims, exp fixed by the token: only app_metadata and role change.
        length = splice(last, user, role)
        exp = last.renewAt + RENEW_MARGIN_SECONDS
      } else {
        const source = hookClaims ?? token.claims
        exp = expFor(token, source)
        length = serialize(source, user, role, exp, overrideApp)
      }
      const authorization = sign(length)
      token.minted = new Minted(
        self,
        user,
        role,
        hookClaims,
        authorization,
        exp - RENEW_MARGIN_SECONDS,
        appAt,
        roleAt,
      )
      signed?.inc()
      if (authorization.length - 7 > mint.warnBytes) {
        oversize?.inc()
        options.onOversize?.(authorization.length - 7)
      }
      return authorization
    },
  }
}
