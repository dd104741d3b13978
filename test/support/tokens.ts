// Test support: synchronous JWT builders (node:crypto), including hostile tokens, for every suite.
import {
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  sign,
} from 'node:crypto'

export type SignAlg =
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

const HASH: Record<SignAlg, string | null> = {
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

export function b64url(input: string | Buffer): string {
  return Buffer.from(input).toString('base64url')
}

function segment(part: object | string): string {
  return typeof part === 'string' ? b64url(part) : b64url(JSON.stringify(part))
}

/** HMAC-signed token. `header` entries are merged over `{alg, typ: 'JWT'}` (set one to undefined to drop it). */
export function signHs(
  claims: object | string,
  secret: string | Buffer,
  options: { alg?: 'HS256' | 'HS384' | 'HS512'; header?: Record<string, unknown> } = {},
): string {
  const alg = options.alg ?? 'HS256'
  const input = `${segment({ alg, typ: 'JWT', ...options.header })}.${segment(claims)}`
  return `${input}.${createHmac(HASH[alg]!, secret).update(input).digest('base64url')}`
}

/** Asymmetric (or HMAC with a secret KeyObject) token signed with `privateKey`. */
export function signWithKey(
  claims: object | string,
  privateKey: KeyObject | JsonWebKey,
  alg: SignAlg,
  options: { kid?: string; header?: Record<string, unknown> } = {},
): string {
  const header: Record<string, unknown> = { alg, typ: 'JWT' }
  if (options.kid !== undefined) header['kid'] = options.kid
  const input = `${segment({ ...header, ...options.header })}.${segment(claims)}`
  const key =
    'type' in privateKey && typeof privateKey.type === 'string' && 'export' in privateKey
      ? (privateKey as KeyObject)
      : createPrivateKey({ key: privateKey as JsonWebKey, format: 'jwk' })
  if (key.type === 'secret') {
    return `${input}.${createHmac(HASH[alg]!, key).update(input).digest('base64url')}`
  }
  const signature = alg.startsWith('ES')
    ? sign(HASH[alg], Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
    : sign(HASH[alg], Buffer.from(input), key)
  return `${input}.${signature.toString('base64url')}`
}

/**
 * A token from raw parts, for hostile input: objects are JSON-encoded, strings are taken as JSON
 * text (base64url-encoded as they are); `signature` is used verbatim (default: a fixed dummy).
 */
export function rawToken(header: object | string, payload: object | string, signature = 'c2ln'): string {
  return `${segment(header)}.${segment(payload)}.${signature}`
}

export interface KeyPairJwk {
  readonly privateJwk: JsonWebKey
  readonly publicJwk: JsonWebKey
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

/** A fresh key pair suitable for `alg` (RS*: 2048-bit RSA; ES*: the matching curve; EdDSA: Ed25519). */
export function generateKeyPairJwk(alg: SignAlg | 'Ed448', options: { kid?: string } = {}): KeyPairJwk {
  let pair: { privateKey: KeyObject; publicKey: KeyObject }
  if (alg.startsWith('RS')) pair = generateKeyPairSync('rsa', { modulusLength: 2048 })
  else if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  else if (alg === 'ES384') pair = generateKeyPairSync('ec', { namedCurve: 'P-384' })
  else if (alg === 'ES512') pair = generateKeyPairSync('ec', { namedCurve: 'P-521' })
  else if (alg === 'Ed448') pair = generateKeyPairSync('ed448')
  else if (alg === 'EdDSA') pair = generateKeyPairSync('ed25519')
  else throw new Error(`no key pair for ${alg}`)
  const extra = options.kid === undefined ? {} : { kid: options.kid }
  return {
    privateJwk: { ...pair.privateKey.export({ format: 'jwk' }), ...extra },
    publicJwk: { ...pair.publicKey.export({ format: 'jwk' }), ...extra },
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
  }
}

/** An `oct` JWK for an HMAC secret. */
export function octJwk(secret: string | Buffer, extra: Record<string, unknown> = {}): JsonWebKey {
  return { kty: 'oct', k: b64url(secret), ...extra }
}
