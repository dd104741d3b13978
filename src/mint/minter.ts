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

/** One reuse slot per verified token: the inputs it was minted from, by identity. */
interface Minted {
  readonly user: CurrentUser | null
  readonly role: string
  readonly hook: Readonly<Claims> | null
  readonly authorization: string
  /** When to sign again, in seconds (for tokens whose exp the gateway chose). */
  readonly renewAt: number
}

// Tokens without exp get one chosen here; renew well before PostgREST's 30 s skew runs out.
const RENEW_MARGIN_SECONDS = 60

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
  const now = options.now ?? (() => Date.now() / 1000)
  const reuse = new WeakMap<VerifiedToken, Minted>()
  const signed = options.metrics?.minted.labels('signed')
  const reused = options.metrics?.minted.labels('reused')
  const oversize = options.metrics?.mintedOversize

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
    if (
      user !== null &&
      hookClaims === null &&
      (allowedClaims === null || allowedClaims.has('app_metadata'))
    ) {
      out['app_metadata'] = user.appMetadata
    }
    out['role'] = role
    // Never later than the inbound token's exp; a token without exp gets the configured lifetime.
    const hookExp = typeof out['exp'] === 'number' ? out['exp'] : null
    let exp = token.exp ?? Math.floor(now()) + mint.ttlSeconds
    if (hookExp !== null && hookExp < exp) exp = hookExp
    out['exp'] = exp
    return out
  }

  function current(
    token: VerifiedToken,
    user: CurrentUser | null,
    hookClaims: Readonly<Claims> | null,
  ): Minted | undefined {
    const previous = reuse.get(token)
    if (
      previous !== undefined &&
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
      const previous = current(token, user, hookClaims)
      if (previous !== undefined && previous.role === role) {
        reused?.inc()
        return previous.authorization
      }
      const claims = claimsFor(token, user, role, hookClaims)
      const input = `${encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`
      const authorization = `Bearer ${input}.${key.sign(input)}`
      const exp = claims['exp'] as number
      reuse.set(token, { user, role, hook: hookClaims, authorization, renewAt: exp - RENEW_MARGIN_SECONDS })
      signed?.inc()
      if (authorization.length - 7 > mint.warnBytes) {
        oversize?.inc()
        options.onOversize?.(authorization.length - 7)
      }
      return authorization
    },
  }
}
