// Verify's keys: PostgREST's `jwt-secret` formats imported once, and per-algorithm candidate lists.
import { createPublicKey, createSecretKey, type JsonWebKey, type KeyObject } from 'node:crypto'

/** The JWS algorithms PostgREST verifies (jose-jwt's `JwsAlg`, without `none`). PS* are not among them. */
export type JwsAlg =
  | 'HS256'
  | 'HS384'
  | 'HS512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'

export const JWS_ALGS: readonly JwsAlg[] = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]

const JWS_ALG_SET: ReadonlySet<string> = new Set(JWS_ALGS)

export function isJwsAlg(value: string): value is JwsAlg {
  return JWS_ALG_SET.has(value)
}

/** jose-jwt's JWE key-management algorithms: a key restricted to one of these never verifies a JWS. */
const JWE_ALGS: ReadonlySet<string> = new Set([
  'RSA1_5',
  'RSA-OAEP',
  'RSA-OAEP-256',
  'A128KW',
  'A192KW',
  'A256KW',
])

export type KeyKind = 'hmac' | 'rsa' | 'ec' | 'okp'

/** One imported verification key. Built once; the verifier only reads it. */
export interface VerifyKey {
  readonly kind: KeyKind
  readonly kid: string | null
  /** The JWK's own `alg`, when it has one: the key is then used for that algorithm only. */
  readonly alg: JwsAlg | null
  /** EC: `P-256` / `P-384` / `P-521`; OKP: `Ed25519` / `Ed448`; otherwise null. */
  readonly curve: string | null
  readonly key: KeyObject
  /** ECDSA verification input, prepared once: JWS signatures are r||s (RFC 7518 3.4). */
  readonly ecdsa: { readonly key: KeyObject; readonly dsaEncoding: 'ieee-p1363' } | null
}

/** A key that was present in the input but cannot be used, and why (for the start-up log). */
export interface SkippedKey {
  readonly index: number
  readonly kid: string | null
  readonly reason: string
}

/**
 * Where the verifier gets candidate keys for a token header. Static sets answer synchronously;
 * a remote set may need to fetch first (unknown `kid`, not loaded yet) and then returns a Promise.
 */
export interface KeySource {
  candidates(alg: JwsAlg, kid: string | null): readonly VerifyKey[] | Promise<readonly VerifyKey[]>
  /** True once a usable set of keys is loaded (readiness). */
  readonly ready: boolean
  /**
   * Changes whenever a key is removed (rotation, revocation). The verifier drops its cache of
   * verified tokens when it sees a new epoch, so a revoked key stops authorising cached tokens.
   */
  readonly epoch: number
  /** Number of usable keys. */
  readonly size: number
}

export interface StaticKeySet extends KeySource {
  candidates(alg: JwsAlg, kid: string | null): readonly VerifyKey[]
  readonly keys: readonly VerifyKey[]
  readonly skipped: readonly SkippedKey[]
}

const EMPTY: readonly VerifyKey[] = Object.freeze([])

/**
 * Which key kinds can verify which algorithm: jose-jwt `canDecodeJws` (Jose/Jwk.hs). HS* only on
 * symmetric keys, so a public key can never be abused as an HMAC secret (algorithm confusion).
 * EC keys are candidates for every ES* algorithm, as in jose-jwt; the curve is enforced when the
 * signature is checked (ES256 needs P-256, ...), so a wrong curve reads "None of the keys ...".
 */
function kindFits(alg: JwsAlg, kind: KeyKind): boolean {
  switch (alg) {
    case 'HS256':
    case 'HS384':
    case 'HS512':
      return kind === 'hmac'
    case 'RS256':
    case 'RS384':
    case 'RS512':
      return kind === 'rsa'
    case 'ES256':
    case 'ES384':
    case 'ES512':
      return kind === 'ec'
    case 'EdDSA':
      return kind === 'okp'
  }
}

/**
 * Builds the candidate lookup once: per algorithm, the keys that may verify it, and per
 * (algorithm, kid) the subset with that kid. Selection per token is then two Map lookups.
 *
 * jose-jwt `canDecodeJws hdr jwk` (used by PostgREST's `JWT.decode`):
 *   `jwkUse jwk /= Just Enc && keyIdCompatible (jwsKid hdr) jwk && algCompatible (Signed (jwsAlg hdr)) jwk && <type fits>`
 * - `keyIdCompatible Nothing _ = True; keyIdCompatible id' jwk = id' == jwkId jwk`: a token with a
 *   `kid` only matches keys with that exact `kid` (a key without one does not match);
 * - `algCompatible`: a key's own `alg`, when present, must equal the token's;
 * - keys with `use: "enc"` were already dropped at import.
 */
export function createCandidateIndex(keys: readonly VerifyKey[]): {
  candidates(alg: JwsAlg, kid: string | null): readonly VerifyKey[]
} {
  const byAlg = new Map<JwsAlg, readonly VerifyKey[]>()
  const byAlgKid = new Map<JwsAlg, Map<string, readonly VerifyKey[]>>()
  for (const alg of JWS_ALGS) {
    const fit: VerifyKey[] = []
    const byKid = new Map<string, VerifyKey[]>()
    for (const key of keys) {
      if (!kindFits(alg, key.kind)) continue
      if (key.alg !== null && key.alg !== alg) continue
      fit.push(key)
      if (key.kid !== null) {
        const list = byKid.get(key.kid)
        if (list === undefined) byKid.set(key.kid, [key])
        else list.push(key)
      }
    }
    byAlg.set(alg, fit.length === 0 ? EMPTY : Object.freeze(fit))
    const frozen = new Map<string, readonly VerifyKey[]>()
    for (const [kid, list] of byKid) frozen.set(kid, Object.freeze(list))
    byAlgKid.set(alg, frozen)
  }
  return {
    candidates(alg, kid) {
      if (kid === null) return byAlg.get(alg) ?? EMPTY
      return byAlgKid.get(alg)?.get(kid) ?? EMPTY
    },
  }
}

/** What importing one JWK gives: a key, or the reason it cannot be used. */
export type ImportResult = { readonly key: VerifyKey } | { readonly skipped: string }

const EC_CURVES: ReadonlySet<string> = new Set(['P-256', 'P-384', 'P-521'])
const OKP_CURVES: ReadonlySet<string> = new Set(['Ed25519', 'Ed448'])

function optionalString(jwk: Record<string, unknown>, name: string): string | null | undefined {
  const value = jwk[name]
  if (value === undefined || value === null) return null
  return typeof value === 'string' ? value : undefined
}

/**
 * Imports one JWK for verification. Private JWKs are accepted through their public half (as
 * jose-jwt does with `RsaPrivateJwk` / `EcPrivateJwk`); `use: "enc"` keys and unsupported types are
 * skipped with a reason.
 */
export function importJwk(jwk: unknown): ImportResult {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return { skipped: 'not a JSON object' }
  const obj = jwk as Record<string, unknown>
  const kid = optionalString(obj, 'kid')
  if (kid === undefined) return { skipped: "'kid' is not a string" }
  const use = optionalString(obj, 'use')
  if (use === undefined) return { skipped: "'use' is not a string" }
  if (use === 'enc') return { skipped: "'use' is 'enc' (encryption keys never verify signatures)" }
  if (use !== null && use !== 'sig') return { skipped: `'use' must be 'sig' or 'enc'` }
  const algValue = optionalString(obj, 'alg')
  if (algValue === undefined) return { skipped: "'alg' is not a string" }
  let alg: JwsAlg | null = null
  if (algValue !== null) {
    if (isJwsAlg(algValue)) alg = algValue
    else if (algValue === 'none') return { skipped: "'alg' is 'none'" }
    else if (JWE_ALGS.has(algValue)) return { skipped: `'alg' ${algValue} is an encryption algorithm` }
    else return { skipped: `unsupported 'alg' ${algValue}` }
  }
  const kty = obj['kty']
  try {
    switch (kty) {
      case 'oct': {
        const k = obj['k']
        if (typeof k !== 'string' || !isBase64Url(k)) return { skipped: "oct key without a base64url 'k'" }
        const bytes = Buffer.from(k, 'base64url')
        if (bytes.length === 0) return { skipped: 'oct key is empty' }
        const key = createSecretKey(bytes)
        return { key: { kind: 'hmac', kid, alg, curve: null, key, ecdsa: null } }
      }
      case 'RSA': {
        const n = base64UrlField(obj, 'n')
        const e = base64UrlField(obj, 'e')
        if (n === null || e === null) return { skipped: "RSA key without base64url 'n' and 'e'" }
        const key = createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' })
        return { key: { kind: 'rsa', kid, alg, curve: null, key, ecdsa: null } }
      }
      case 'EC': {
        const crv = obj['crv']
        if (typeof crv !== 'string' || !EC_CURVES.has(crv)) return { skipped: `unsupported EC curve` }
        const x = base64UrlField(obj, 'x')
        const y = base64UrlField(obj, 'y')
        if (x === null || y === null) return { skipped: "EC key without base64url 'x' and 'y'" }
        const pub: JsonWebKey = { kty: 'EC', crv, x, y }
        const key = createPublicKey({ key: pub, format: 'jwk' })
        return {
          key: { kind: 'ec', kid, alg, curve: crv, key, ecdsa: { key, dsaEncoding: 'ieee-p1363' } },
        }
      }
      case 'OKP': {
        const crv = obj['crv']
        if (typeof crv !== 'string' || !OKP_CURVES.has(crv)) return { skipped: 'unsupported OKP curve' }
        const x = base64UrlField(obj, 'x')
        if (x === null) return { skipped: "OKP key without base64url 'x'" }
        // jose-jwt: an Ed25519/Ed448 key is always a signing key for EdDSA.
        if (alg !== null && alg !== 'EdDSA') return { skipped: `'alg' ${alg} does not fit an ${crv} key` }
        const key = createPublicKey({ key: { kty: 'OKP', crv, x }, format: 'jwk' })
        return { key: { kind: 'okp', kid, alg, curve: crv, key, ecdsa: null } }
      }
      default:
        return { skipped: typeof kty === 'string' ? `unsupported key type '${kty}'` : "missing 'kty'" }
    }
  } catch (err) {
    return { skipped: `invalid key material (${(err as Error).message})` }
  }
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

/** A JWK member that must be non-empty base64url (Node's own decoder would skip bad characters). */
function base64UrlField(jwk: Record<string, unknown>, name: string): string | null {
  const value = jwk[name]
  return typeof value === 'string' && value.length > 0 && isBase64Url(value) ? value : null
}

/** RFC 7515 2: base64url without padding; a length of 4n+1 cannot come from any byte string. */
export function isBase64Url(value: string): boolean {
  return value.length % 4 !== 1 && BASE64URL.test(value)
}

/** PostgREST's minimum for a plain `jwt-secret` (Config.hs `parseSecret`), in bytes. */
export const MIN_SECRET_BYTES = 32

/**
 * PostgREST's `jwt-secret-is-base64` (Config.hs `decodeSecret`): `_`, `-`, `.` are read as `/`,
 * `+`, `=`, surrounding whitespace is ignored, then standard padded base64 is decoded strictly.
 */
function decodeBase64Secret(secret: string): Buffer {
  const text = secret.replaceAll('_', '/').replaceAll('-', '+').replaceAll('.', '=').trim()
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Error('the JWT secret is not valid base64 (jwt-secret-is-base64 is set)')
  }
  return Buffer.from(text, 'base64')
}

function staticSet(keys: readonly VerifyKey[], skipped: readonly SkippedKey[]): StaticKeySet {
  const index = createCandidateIndex(keys)
  return {
    candidates: index.candidates,
    ready: true,
    epoch: 0,
    size: keys.length,
    keys,
    skipped,
  }
}

/** Imports a parsed JWKS `{"keys":[...]}`: usable keys and the reasons for the others. */
export function importJwks(keys: readonly unknown[]): { keys: VerifyKey[]; skipped: SkippedKey[] } {
  const usable: VerifyKey[] = []
  const skipped: SkippedKey[] = []
  for (let index = 0; index < keys.length; index++) {
    const jwk = keys[index]
    const result = importJwk(jwk)
    if ('key' in result) usable.push(result.key)
    else {
      const kid =
        typeof jwk === 'object' && jwk !== null && typeof (jwk as { kid?: unknown }).kid === 'string'
          ? (jwk as { kid: string }).kid
          : null
      skipped.push({ index, kid, reason: result.skipped })
    }
  }
  return { keys: usable, skipped }
}

/**
 * Parses inbound keys in every format PostgREST's `jwt-secret` accepts (Config.hs `parseSecret`):
 * a JWKS `{"keys":[...]}`, else a single JWK, else a plain secret of at least 32 bytes, which
 * becomes `SymmetricJwk bytes Nothing (Just Sig) (Just HS256)`: no `kid`, HS256 only. With
 * `isBase64`, the secret is base64-decoded first and the decoded bytes are parsed the same way.
 *
 * Throws a plain Error with a message the config loader prefixes with the option name.
 * Differs from PostgREST on one point: a JSON object that is neither a JWK nor a JWKS is refused
 * instead of being used, JSON text and all, as an HMAC secret.
 */
export function parseKeySet(secret: string, options: { isBase64: boolean }): StaticKeySet {
  const bytes = options.isBase64 ? decodeBase64Secret(secret) : Buffer.from(secret, 'utf8')
  const text = options.isBase64 ? bytes.toString('utf8') : secret
  let json: unknown
  const trimmed = text.trimStart()
  if (trimmed.startsWith('{')) {
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
  }
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
    const obj = json as Record<string, unknown>
    if (Array.isArray(obj['keys'])) {
      const { keys, skipped } = importJwks(obj['keys'])
      if (keys.length === 0) {
        const reasons = skipped.map((s) => `key ${s.index}: ${s.reason}`).join('; ')
        throw new Error(`the JWKS has no usable verification key (${reasons || 'it is empty'})`)
      }
      return staticSet(Object.freeze(keys), Object.freeze(skipped))
    }
    if ('kty' in obj) {
      const result = importJwk(obj)
      if ('skipped' in result) throw new Error(`the JWK cannot be used: ${result.skipped}`)
      return staticSet(Object.freeze([result.key]), Object.freeze([]))
    }
    throw new Error('the JWT secret is a JSON object but neither a JWK (no "kty") nor a JWKS (no "keys")')
  }
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new Error(`the JWT secret must be at least ${MIN_SECRET_BYTES} characters long`)
  }
  const key: VerifyKey = {
    kind: 'hmac',
    kid: null,
    alg: 'HS256',
    curve: null,
    key: createSecretKey(bytes),
    ecdsa: null,
  }
  return staticSet(Object.freeze([key]), Object.freeze([]))
}
