// Role stage: fresh claims -> the PostgreSQL role PostgREST will switch to, or a refusal (403).
import type { Claims } from '../auth/types.js'
import type { RoleConfig } from '../config/types.js'
import { GatewayError } from '../errors/index.js'
import type { Metrics } from '../observability/metrics.js'

/** What the role stage reads from the claims stage: the user's current record. */
export interface CurrentUser {
  readonly appMetadata: Readonly<Record<string, unknown>>
  readonly role: string | null
}

export interface RoleMapper {
  /**
   * The role for a user token: the value at the claim path (fresh `app_metadata` when a current
   * user record exists), through the mapping table; else the user's `role` column or the token's
   * `role`; else the default. Throws RoleNotAllowed when the result is outside the allow-list.
   */
  mapRole(claims: Readonly<Claims>, user: CurrentUser | null): string
  isAllowed(role: string): boolean
}

const hasOwn = Object.prototype.hasOwnProperty

function walk(value: unknown, path: readonly string[], from: number): unknown {
  let current = value
  for (let i = from; i < path.length; i++) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return undefined
    const key = path[i] as string
    // Own properties only: a claim named like an Object.prototype member is not a role.
    if (!hasOwn.call(current, key)) return undefined
    current = (current as Record<string, unknown>)[key]
  }
  return current
}

export function createRoleMapper(config: RoleConfig, metrics?: Metrics): RoleMapper {
  const path = config.claimPath
  if (path.length === 0) throw new Error('GATEWAY_ROLE_CLAIM (role.claim) must name a claim')
  // user_metadata is writable by the user: a role read from it would be chosen by the caller.
  if (path[0] === 'user_metadata') {
    throw new Error('GATEWAY_ROLE_CLAIM (role.claim) must not read user_metadata: users can write it')
  }
  const readsAppMetadata = path[0] === 'app_metadata'
  const map = config.map
  const allowed = config.allowed
  const defaultRole = config.defaultRole
  const refusals = metrics?.roleRefusals

  function refuse(): never {
    refusals?.inc()
    throw new GatewayError('RoleNotAllowed')
  }

  return {
    mapRole(claims, user) {
      const raw = user !== null && readsAppMetadata ? walk(user.appMetadata, path, 1) : walk(claims, path, 0)
      let role: string
      if (raw === undefined || raw === null) {
        const fallback = user?.role ?? claims['role']
        if (fallback === undefined || fallback === null || fallback === '') role = defaultRole
        else if (typeof fallback === 'string') role = fallback
        else return refuse() // a non-string token role, as at the claim path: never a default
      } else if (typeof raw === 'string') {
        role = map.get(raw) ?? raw
      } else {
        // PostgREST would JSON-encode a non-string role and fail on it; refuse it here instead.
        return refuse()
      }
      if (!allowed.has(role)) return refuse()
      return role
    },
    isAllowed(role) {
      return allowed.has(role)
    },
  }
}
