// Verify's output: what the rest of the pipeline knows about a caller whose token checked out.

/** Claims as parsed from the token payload (a JSON object, created without a prototype). */
export type Claims = Record<string, unknown>

/**
 * A token whose signature, algorithm and claim types have been checked. Cached by token string:
 * time claims (`exp`, `nbf`, `iat`) are re-checked against the clock on every use.
 */
export interface VerifiedToken {
  readonly token: string
  /**
   * The payload as an object. The verifier parses it again on each read instead of keeping it:
   * a cached token then costs only its string, and the cached request path never reads it.
   */
  readonly claims: Readonly<Claims>
  /** Numeric time claims, `null` when absent (PostgREST: `null` counts as absent). */
  readonly exp: number | null
  readonly nbf: number | null
  readonly iat: number | null
  /** `sub` when it is a non-empty string; tokens without one (API keys) are forwarded as they are. */
  readonly sub: string | null
  readonly sessionId: string | null
  /** The top-level `role` claim when it is a non-empty string (API keys go by it). */
  readonly role: string | null
  readonly kid: string | null
  readonly alg: string
  /**
   * The mint stage's reuse slot (mint/minter.ts), kept on the token so that a cached token needs
   * no side table: opaque to every other stage, and dropped with the token.
   */
  minted?: unknown
  /**
   * The claims stage's kept cache entries for this token's user and session (claims/store.ts),
   * opaque to every other stage: a cached request reaches its user's answer without a lookup.
   */
  freshUser?: unknown
  freshSession?: unknown
}

/** The verify stage: returns synchronously on a cache hit, so the hot path never awaits. */
export interface Verifier {
  verify(token: string): VerifiedToken | Promise<VerifiedToken>
  /** Number of cached verified tokens (metrics, tests). */
  readonly size: number
  clear(): void
  close(): Promise<void>
}
