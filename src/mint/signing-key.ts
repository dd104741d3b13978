// Mint stage, key half: the key PostgREST trusts, imported once, and its public JWKS.
import {
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  type JsonWebKey,
  type KeyObject,
  sign,
} from 'node:crypto'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { Hmac } from '../auth/hmac.js'

export type MintAlgorithm = 'HS256' | 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'RS384' | 'RS512' | 'EdDSA'

export interface SigningKey {
  readonly alg: MintAlgorithm
  readonly kid: string | null
  /** The signature of `input`, base64url-encoded. */
  sign(input: string): string
  /** HS256 keys: the same MAC prepared once, for signing bytes without a string or an Hmac object. */
  readonly hmac: Hmac | null
  /** The public half as a JWK (asymmetric keys only), for PostgREST's jwt-secret. */
  readonly publicJwk: JWK | null
}

const EC_ALGS: Record<string, MintAlgorithm> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }
const HASH: Record<MintAlgorithm, string | null> = {
  HS256: 'sha256',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
  RS256: 'sha256',
  RS384: 'sha384',
  RS512: 'sha512',
  EdDSA: null,
}

/**
 * Imports the upstream key: a plain HS256 secret (at least 32 characters, as PostgREST demands),
 * optionally base64-encoded, or a private JWK (EC, RSA or OKP). Throws an Error naming the option.
 */
export async function importSigningKey(
  secret: string,
  options: { isBase64: boolean; kid: string | null },
): Promise<SigningKey> {
  const trimmed = secret.trim()
  if (trimmed.startsWith('{')) return importPrivateJwk(trimmed, options.kid)
  const bytes = options.isBase64 ? Buffer.from(trimmed, 'base64') : Buffer.from(secret, 'utf8')
  if (bytes.length < 32) {
    throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) must be at least 32 characters')
  }
  const key = createSecretKey(bytes)
  return {
    alg: 'HS256',
    kid: options.kid,
    publicJwk: null,
    hmac: new Hmac('sha256', bytes),
    sign(input) {
      return createHmac('sha256', key).update(input).digest('base64url')
    },
  }
}

async function importPrivateJwk(text: string, configuredKid: string | null): Promise<SigningKey> {
  let jwk: JWK
  try {
    jwk = JSON.parse(text) as JWK
  } catch {
    throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is not valid JSON')
  }
  if (jwk.kty === 'oct') {
    if (typeof jwk.k !== 'string')
      throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret): oct JWK without k')
    return importSigningKey(Buffer.from(jwk.k, 'base64url').toString('base64'), {
      isBase64: true,
      kid: jwk.kid ?? configuredKid,
    })
  }
  if (typeof jwk.d !== 'string') {
    throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) must be a private JWK (it has no "d")')
  }
  let alg: MintAlgorithm
  if (jwk.kty === 'EC') {
    const fromCurve = EC_ALGS[jwk.crv ?? '']
    if (fromCurve === undefined) throw new Error(`GATEWAY_UPSTREAM_JWT_SECRET: unsupported EC curve`)
    alg = fromCurve
  } else if (jwk.kty === 'RSA') {
    alg = jwk.alg === 'RS384' ? 'RS384' : jwk.alg === 'RS512' ? 'RS512' : 'RS256'
  } else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    alg = 'EdDSA'
  } else {
    throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret): use an EC, RSA or Ed25519 private JWK')
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' })
  } catch {
    throw new Error('GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is not a usable private JWK')
  }
  const exported = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK
  const kid = jwk.kid ?? configuredKid ?? (await calculateJwkThumbprint(exported))
  const publicJwk: JWK = { ...exported, kid, alg, use: 'sig' }
  const hash = HASH[alg]
  const keyInput = alg.startsWith('ES') ? { key: privateKey, dsaEncoding: 'ieee-p1363' as const } : privateKey
  return {
    alg,
    kid,
    publicJwk,
    hmac: null,
    sign(input) {
      return sign(hash, Buffer.from(input), keyInput).toString('base64url')
    },
  }
}
