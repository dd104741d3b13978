// Claims stage output: the caller's current claims, as read from PostgreSQL (or the token when allowed).
import type { VerifiedToken } from '../auth/types.js'

/** The current state of one user, shared by every request of that user while it is cached. */
export interface FreshClaims {
  readonly userId: string
  /** From the user query's `app_metadata` jsonb (frozen). */
  readonly appMetadata: Readonly<Record<string, unknown>>
  /** The user's `role` column when the query returns one. */
  readonly role: string | null
  /**
   * Changes whenever the entry is (re)loaded with different content; unchanged on a reload with the
   * same content. `0` for claims taken from the token. Minted-token reuse is keyed by it.
   */
  readonly version: number
  /** `token` only in the `onDatabaseDown: 'token'` fallback. */
  readonly source: 'database' | 'token'
}

/** The freshen stage. */
export interface ClaimsStore {
  /**
   * Synchronous on a fresh cache hit (no await on the hot path); a Promise on a miss or refresh.
   * Throws/rejects a GatewayError: UserNotFound, UserDeleted, UserBanned, SessionRevoked, or
   * ClaimsUnavailable (503) when the database cannot answer and nothing usable is cached.
   */
  freshen(token: VerifiedToken): FreshClaims | Promise<FreshClaims>
  /** True while the invalidation listener is connected (readiness). */
  readonly listening: boolean
  /** Called with a user id (or `null` = everyone) whenever cached claims are evicted. */
  onInvalidate(listener: (userId: string | null) => void): void
  /** Connects the pool and the listener; resolves after the first listen attempt either way. */
  start(): Promise<void>
  /** Ends the pool and the listener. */
  close(): Promise<void>
  /** User queries run so far. */
  readonly lookups: number
}
