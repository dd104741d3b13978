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
  /** The minter's generation this slot was last used in (the bound on kept slots, see `keep`). */
  gen = 0

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
const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39

/** Escapes JSON.stringify writes in their two-character form; any other escape is not its output. */
const SHORT_ESCAPE = new Uint8Array(128)
for (const c of '"\\bfnrt') SHORT_ESCAPE[c.charCodeAt(0)] = 1

const APP_NAME = Buffer.from('"app_metadata"')
const ROLE_NAME = Buffer.from('"role"')
const EXP_NAME = Buffer.from('"exp"')
const PROTO_NAME = Buffer.from('"__proto__"')
const TRUE = Buffer.from('true')
const FALSE = Buffer.from('false')
const NULL = Buffer.from('null')
// Beyond these the payload goes the parse-and-serialise way.
const MAX_DEPTH = 32
const MAX_NAMES = 256

/** Whether `bytes[at, at + word.length)` is `word`. */
function matches(bytes: Buffer, at: number, size: number, word: Buffer): boolean {
  if (size !== word.length) return false
  for (let k = 0; k < size; k++) if (bytes[at + k] !== word[k]) return false
  return true
}

/** Whether `bytes[a, a + size)` and `bytes[b, b + size)` are the same bytes. */
function same(bytes: Buffer, a: number, b: number, size: number): boolean {
  for (let k = 0; k < size; k++) if (bytes[a + k] !== bytes[b + k]) return false
  return true
}

/** The first backslash in `bytes[from, end)`, or `end`. */
function nextBackslash(bytes: Buffer, from: number, end: number): number {
  const at = bytes.indexOf(BACKSLASH, from)
  return at === -1 || at > end ? end : at
}

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
  /** `bytes` copied in at `at` (TypedArray#set: a builtin, cheaper than a loop or Buffer#copy). */
  put(at: number, bytes: Buffer): number {
    this.reserve(at, bytes.length).set(bytes, at)
    return at + bytes.length
  }
  /** JSON.stringify of an integer, written at `at`. */
  integer(at: number, value: number): number {
    if (value < 0 || value > 0xffffffffff) return this.text(at, String(value))
    let digits = 1
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++
    const target = this.reserve(at, digits)
    let rest = value
    for (let k = at + digits - 1; k >= at; k--) {
      target[k] = 0x30 + (rest % 10)
      rest = Math.floor(rest / 10)
    }
    return at + digits
  }
  /** `bytes[from, to)` copied to `at` in the same buffer (copyWithin: no view object per copy). */
  move(at: number, from: number, to: number): number {
    this.reserve(at, to - from).copyWithin(at, from, to)
    return at + to - from
  }
  /** A member's name, after a comma unless it is the first of the object opened at `open`. */
  name(at: number, open: number, name: string): number {
    if (at > open + 1) this.reserve(at, 1)[at++] = COMMA
    return this.text(at, name)
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
  // assembled in one buffer (HS256: the HMAC's, where it is hashed; other keys: `out`), whose
  // header is written once, and read out as one flat string: no rope of concatenated pieces is
  // kept alive by the reuse slot.
  // A payload read in (the inbound one, or the last minted one to splice) sits at the start of
  // `json` and the new payload is written after it, from `start`: copies between them stay in one
  // buffer.
  const json = new Scratch(4096)
  let start = 0
  const prefix = `Bearer ${encodedHeader}.`
  const out = new Scratch(4096)
  out.bytes.write(prefix, 0, 'latin1')
  const hmac = key.hmac === null ? null : key.hmac.withPrefix(`${encodedHeader}.`)
  let appAt = -1
  let roleAt = -1
  // The inbound payload bytes (first mint from the token text) and, while scanning them, the member
  // names of the objects still open: a name repeated in one object makes the text not canonical.
  const names = new Int32Array(2 * MAX_NAMES)
  const firstName = new Int32Array(MAX_DEPTH + 1)
  const isObject = new Uint8Array(MAX_DEPTH + 1)
  const seen = new Int32Array(MAX_DEPTH + 1)
  let textExp = 0
  // Where the app_metadata, role and exp values sit in the inbound payload: [2 * which, 2 * which + 1].
  const spans = new Int32Array(8)
  // The claims store shares equal app_metadata objects and role strings between users: the JSON
  // of the last one is kept (by identity; records are never changed in place).
  let lastApp: object | null = null
  let lastAppJson: Buffer = Buffer.alloc(0)
  let lastRole = ''
  let lastRoleJson: Buffer = Buffer.from('""')

  function appJson(app: Readonly<Record<string, unknown>>): Buffer {
    if (app !== lastApp) {
      lastAppJson = Buffer.from(JSON.stringify(app))
      lastApp = app
    }
    return lastAppJson
  }

  function roleJson(role: string): Buffer {
    if (role !== lastRole) {
      lastRoleJson = Buffer.from(JSON.stringify(role))
      lastRole = role
    }
    return lastRoleJson
  }

  // The bound on kept slots: two generations of tokens whose slot this minter wrote. When the
  // young one fills, the slots of tokens still in the old one (not used since) are cleared and the
  // young one becomes the old: at most `cacheMaxEntries` slots alive, a hit costs one comparison.
  const limit = mint.cacheMaxEntries
  const generation = limit >= 2 ? Math.floor(limit / 2) : limit
  let young: VerifiedToken[] = []
  let elder: VerifiedToken[] = []
  let epoch = 1

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
    start = 0
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
      n = json.name(n, 0, text.slice(1, -1))
    }
    const member = (name: string, value: string | Buffer): number => {
      flush()
      n = json.name(n, 0, name)
      const at = n
      n = typeof value === 'string' ? json.text(n, value) : json.put(n, value)
      return span(at, n)
    }
    appAt = -1
    for (const name in source) {
      if (allowedClaims !== null && !allowedClaims.has(name)) continue
      if (name === 'app_metadata' && overrideApp) {
        appAt = member(APP_KEY, appJson(user!.appMetadata))
        sawApp = true
      } else if (name === 'role') {
        roleAt = member(ROLE_KEY, roleJson(role))
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
    if (overrideApp && !sawApp) appAt = member(APP_KEY, appJson(user!.appMetadata))
    if (!sawRole) roleAt = member(ROLE_KEY, roleJson(role))
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
    const length = json
      .reserve(0, authorization.length)
      .write(authorization.slice(prefix.length, authorization.lastIndexOf('.')), 0, 'base64url')
    const app = previousToken.appAt
    const at = previousToken.roleAt
    start = length
    let n = start
    let from = 0
    appAt = -1
    roleAt = -1
    // The one or two values in payload order.
    const first = app !== -1 && app < at ? app : at
    const second = first === at ? app : at
    for (let k = 0; k < 2; k++) {
      const packed = k === 0 ? first : second
      if (packed === -1) continue
      n = json.move(n, from, Math.floor(packed / SPAN))
      const valueStart = n - start
      if (packed === at) {
        n = json.put(n, roleJson(role))
        roleAt = span(valueStart, n - start)
      } else {
        n = json.put(n, appJson(user!.appMetadata))
        appAt = span(valueStart, n - start)
      }
      from = packed % SPAN
    }
    return json.move(n, from, length)
  }

  /**
   * The first mint of a token issued by JSON.stringify (Supabase Auth's are): when its payload text
   * is exactly what JSON.stringify gives for the parsed claims, `JSON.stringify(claimsFor(...))` is
   * that text with the `app_metadata`, `role` and `exp` values replaced (or appended in that
   * order), so it is copied rather than parsed and serialised. The text qualifies when it has no
   * whitespace, escapes only in JSON.stringify's short forms, integers of at most 15 digits
   * (doubles print them back as written), no member name starting with a digit (JSON.parse puts
   * array-index names first), no name twice in one object (JSON.parse keeps the last value in the
   * first place) and no top-level `__proto__` (claimsFor's copy drops it). Anything else: -1, and
   * the claims are parsed and serialised. Only the verified token's own text is read (its claims
   * are that text parsed).
   */
  function fromText(
    token: VerifiedToken,
    user: CurrentUser | null,
    role: string,
    overrideApp: boolean,
  ): number {
    const text = token.token
    const first = text.indexOf('.')
    const second = text.indexOf('.', first + 1)
    if (first === -1 || second <= first) return -1
    const src = json.reserve(0, second - first)
    const length = src.write(text.slice(first + 1, second), 0, 'base64url')
    if (length < 2 || src[0] !== OPEN || src[length - 1] !== CLOSE) return -1
    const end = length - 1
    spans.fill(-1)
    let claimedExp = -1
    // 0: another member; 1: app_metadata, 2: role, 3: exp (of the current top-level member).
    let which = 0
    let valueStart = -1
    let expIsNumber = false
    let members = 0
    let depth = 0
    isObject[0] = 1
    firstName[0] = 0
    seen[0] = 0
    let count = 0
    let expectName = true
    // Strings are skipped to their closing quote with indexOf (the text parsed as JSON when the
    // token was verified, so no string holds a raw control character); one that holds a backslash
    // is walked to check its escapes.
    let backslash = nextBackslash(src, 1, end)
    let i = 1
    while (i < end) {
      const c = src[i]!
      if (c === QUOTE) {
        const start = i++
        let close = src.indexOf(QUOTE, i)
        if (close === -1 || close >= end) return -1
        if (backslash < close) {
          // An escape before the next quote: walk this string byte by byte.
          for (;;) {
            if (i >= end) return -1
            const b = src[i]!
            if (b === QUOTE) break
            if (b === BACKSLASH) {
              const e = src[i + 1]!
              if (e >= 128 || SHORT_ESCAPE[e] === 0) return -1
              i += 2
            } else i++
          }
          close = i
          backslash = nextBackslash(src, close + 1, end)
        }
        i = close + 1
        if (!expectName) continue
        const size = i - start
        const lead = src[start + 1]!
        if (lead >= ZERO && lead <= NINE) return -1
        // A 32-bit filter per open object (by length and last character) spares comparing
        // every name with every other; a name whose bit is set is compared with the others.
        const bit = 1 << ((size * 7 + src[i - 2]!) & 31)
        if ((seen[depth]! & bit) !== 0) {
          for (let k = firstName[depth]!; k < count; k++) {
            const at = names[2 * k]!
            if (names[2 * k + 1]! - at === size && same(src, at, start, size)) return -1
          }
        }
        seen[depth] = seen[depth]! | bit
        if (count === MAX_NAMES || src[i] !== COLON) return -1
        names[2 * count] = start
        names[2 * count + 1] = i
        count++
        i++
        expectName = false
        if (depth === 0) {
          members++
          valueStart = i
          which = matches(src, start, size, APP_NAME)
            ? 1
            : matches(src, start, size, ROLE_NAME)
              ? 2
              : matches(src, start, size, EXP_NAME)
                ? 3
                : 0
          if (which === 0 && matches(src, start, size, PROTO_NAME)) return -1
        }
      } else if (c === OPEN || c === OPEN_ARRAY) {
        if (++depth > MAX_DEPTH) return -1
        const object = c === OPEN
        isObject[depth] = object ? 1 : 0
        firstName[depth] = count
        seen[depth] = 0
        expectName = object
        i++
      } else if (c === CLOSE || c === CLOSE_ARRAY) {
        if (depth === 0) return -1
        // The names of a closed object are not compared any more.
        count = firstName[depth]!
        depth--
        i++
      } else if (c === COMMA) {
        if (depth === 0 && which !== 0) {
          spans[2 * which] = valueStart
          spans[2 * which + 1] = i
        }
        expectName = isObject[depth] === 1
        i++
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        const start = i
        if (c === MINUS) i++
        const lead = src[i]
        if (lead === ZERO) {
          // -0 prints back as 0.
          if (c === MINUS) return -1
          i++
        } else {
          if (lead === undefined || lead < ZERO + 1 || lead > NINE) return -1
          while (i < end && src[i]! >= ZERO && src[i]! <= NINE) i++
        }
        // A fraction or exponent that follows is refused by the loop (no case for `.`, `e`, `E`).
        const next = src[i]!
        if (i - start > 15 || (next >= ZERO && next <= NINE)) return -1
        if (depth === 0 && which === 3) {
          let value = 0
          for (let k = c === MINUS ? start + 1 : start; k < i; k++) value = value * 10 + (src[k]! - ZERO)
          claimedExp = c === MINUS ? -value : value
          expIsNumber = true
        }
      } else {
        const word = c === 0x74 ? TRUE : c === 0x66 ? FALSE : c === 0x6e ? NULL : null
        if (word === null || !matches(src, i, Math.min(word.length, end - i), word)) return -1
        i += word.length
      }
    }
    if (depth !== 0) return -1
    if (members > 0 && which !== 0) {
      spans[2 * which] = valueStart
      spans[2 * which + 1] = end
    }
    const hasExp = spans[6] !== -1
    // expFor: a numeric exp claim wins when earlier (the verifier's exp is that claim); only
    // integer exp claims come this way.
    if (hasExp && !expIsNumber) return -1
    let exp = token.exp ?? Math.floor(now()) + mint.ttlSeconds
    if (hasExp && claimedExp < exp) exp = claimedExp
    textExp = exp
    // Without a user record the token's own app_metadata stays.
    if (!overrideApp) spans[2] = -1

    appAt = -1
    roleAt = -1
    start = length
    let n = start
    let from = 0
    // The replaced values in payload order.
    for (let k = 0; k < 3; k++) {
      let next = end
      let kind = 0
      for (let w = 1; w <= 3; w++) {
        const at = spans[2 * w]!
        if (at !== -1 && at < next) {
          next = at
          kind = w
        }
      }
      if (kind === 0) break
      n = json.move(n, from, next)
      const at = n - start
      if (kind === 1) {
        n = json.put(n, appJson(user!.appMetadata))
        appAt = span(at, n - start)
      } else if (kind === 2) {
        n = json.put(n, roleJson(role))
        roleAt = span(at, n - start)
      } else {
        n = json.integer(n, exp)
      }
      from = spans[2 * kind + 1]!
      spans[2 * kind] = -1
    }
    n = json.move(n, from, end)
    if (overrideApp && appAt === -1) {
      n = json.name(n, start, APP_KEY)
      const at = n - start
      n = json.put(n, appJson(user!.appMetadata))
      appAt = span(at, n - start)
    }
    if (roleAt === -1) {
      n = json.name(n, start, ROLE_KEY)
      const at = n - start
      n = json.put(n, roleJson(role))
      roleAt = span(at, n - start)
    }
    if (!hasExp) {
      n = json.name(n, start, EXP_KEY)
      n = json.integer(n, exp)
    }
    json.reserve(n, 1)[n++] = CLOSE
    return n
  }

  /** Clears the slots this minter wrote on `tokens` that were last used before generation `below`. */
  function clear(tokens: VerifiedToken[], below: number): void {
    for (let k = 0; k < tokens.length; k++) {
      const token = tokens[k]!
      const slot = token.minted
      if (slot instanceof Minted && slot.by === self && slot.gen < below) token.minted = undefined
    }
    tokens.length = 0
  }

  /** Counts `slot` (now on `token`) in the young generation, turning the generations over when it is full. */
  function admit(token: VerifiedToken, slot: Minted): void {
    if (young.length >= generation) {
      // The slot being admitted may sit in the generation that is cleared now: it stays.
      slot.gen = epoch + 1
      if (generation === limit) {
        // A bound of 1: one generation, emptied.
        clear(young, epoch + 1)
      } else {
        const dropped = elder
        clear(dropped, epoch)
        elder = young
        young = dropped
      }
      epoch++
    }
    slot.gen = epoch
    young.push(token)
  }

  /** A slot was used: one in the old generation moves to the young one. */
  function touch(token: VerifiedToken, slot: Minted): void {
    if (slot.gen !== epoch) admit(token, slot)
  }

  /** Keeps a new slot on the token, within the bound (0: none kept). */
  function keep(token: VerifiedToken, last: unknown, slot: Minted): void {
    if (limit === 0) return
    token.minted = slot
    if (last instanceof Minted && last.by === self && last.gen === epoch) slot.gen = epoch
    else admit(token, slot)
  }

  /** Signs the payload `json.bytes[start, jsonEnd)`. */
  function sign(jsonEnd: number): string {
    const payload = json.bytes.toString('base64url', start, jsonEnd)
    if (hmac !== null) {
      // Written straight after the header in the HMAC's own buffer and read out of it with the MAC.
      hmac.scratch(payload.length).write(payload, hmac.messageStart, 'latin1')
      return hmac.signedText(payload.length, 'Bearer ')
    }
    let end = prefix.length + payload.length
    const bytes = out.reserve(prefix.length, payload.length + 200)
    bytes.write(payload, prefix.length, 'latin1')
    const signature = key.sign(bytes.toString('latin1', 7, end))
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
      if (previous !== undefined) {
        touch(token, previous)
        reused?.inc()
      }
      return previous
    },
    authorization(token, user, role, hookClaims) {
      const last = token.minted
      const previous = current(token, user, hookClaims)
      if (previous !== undefined && previous.role === role) {
        touch(token, previous)
        reused?.inc()
        return previous.authorization
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
        length = hookClaims === null && allowedClaims === null ? fromText(token, user, role, overrideApp) : -1
        if (length !== -1) {
          exp = textExp
        } else {
          const source = hookClaims ?? token.claims
          exp = expFor(token, source)
          length = serialize(source, user, role, exp, overrideApp)
        }
      }
      const authorization = sign(length)
      const slot = new Minted(
        self,
        user,
        role,
        hookClaims,
        authorization,
        exp - RENEW_MARGIN_SECONDS,
        appAt,
        roleAt,
      )
      keep(token, last, slot)
      signed?.inc()
      if (authorization.length - 7 > mint.warnBytes) {
        oversize?.inc()
        options.onOversize?.(authorization.length - 7)
      }
      return authorization
    },
  }
}
