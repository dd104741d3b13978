// The validated, frozen configuration every stage is built from (loaded by config/load.ts).

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface ServerConfig {
  readonly host: string
  readonly port: number
  readonly adminHost: string
  readonly adminPort: number
  /** Node's `--max-http-header-size` for the proxy listener: larger request heads get 431. */
  readonly maxHeaderBytes: number
  /** A client must send its whole request head within this time (slowloris). */
  readonly headersTimeoutMs: number
  /** Upper bound on a whole request, body included (0 = none; long uploads stream). */
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** Trust an inbound `X-Forwarded-For` and append to it (the gateway sits behind a load balancer). */
  readonly trustForwardedHeaders: boolean
}

export interface UpstreamConfig {
  readonly url: string
  /** Key for minted tokens: an HS256 secret (>= 32 chars) or a private JWK (ES256, RS256, EdDSA). */
  readonly jwtSecret: string
  readonly jwtSecretIsBase64: boolean
  /** Time to wait for upstream response headers. */
  readonly timeoutMs: number
  /** Time allowed between two body chunks from upstream. */
  readonly bodyTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly connections: number
}

export interface JwtConfig {
  /** Inbound keys in PostgREST's `jwt-secret` formats; absent = tokens get 500 PGRST300. */
  readonly secret: string | null
  readonly secretIsBase64: boolean
  readonly jwksUrl: string | null
  readonly aud: string | null
  readonly iss: string | null
  /** PostgREST's fixed skew for exp/nbf/iat. */
  readonly clockSkewSeconds: number
  readonly cacheMaxEntries: number
  /** Longest a remote key set is trusted without a refetch (Cache-Control is capped by it). */
  readonly jwksMaxAgeSeconds: number
  /** Minimum time between two refetches triggered by an unknown `kid`. */
  readonly jwksCooldownSeconds: number
  readonly jwksTimeoutMs: number
}

export interface DbConfig {
  /** PostgreSQL for fresh claims; absent = claims come from the token. */
  readonly url: string | null
  readonly poolSize: number
  readonly lookupTimeoutMs: number
  /** Parameterised user query: `$1` = user id; returns app_metadata jsonb and optional columns. */
  readonly userQuery: string
  /** Parameterised session query: `$1` = session id; a row means the session exists. Null = no check. */
  readonly sessionQuery: string | null
  readonly notifyChannel: string
}

export interface ClaimsConfig {
  readonly cacheMaxEntries: number
  readonly ttlSeconds: number
  readonly maxStaleSeconds: number
  /** While the listener is down, entries are trusted for at most this long. */
  readonly disconnectedTtlSeconds: number
  /** When the database cannot answer: refuse (503) or use the token's own claims. */
  readonly onDatabaseDown: 'fail' | 'token'
}

export interface RoleConfig {
  /** Dotted path into the fresh claims, e.g. `app_metadata.role`. */
  readonly claim: string
  readonly claimPath: readonly string[]
  readonly map: ReadonlyMap<string, string>
  readonly allowed: ReadonlySet<string>
  readonly defaultRole: string
  /**
   * PostgREST's `db-anon-role`: an API key (a token without `sub`) carrying this role goes through
   * as an anonymous request unless the role is in the allow-list.
   */
  readonly anonRole: string
  /** Explicit opt-in to put superuser-like roles (service_role, postgres, ...) in the allow-list. */
  readonly allowPrivileged: boolean
}

export interface HookConfig {
  /** `pg-functions://postgres/<schema>/<function>` or `https://...`; null = no hook. */
  readonly uri: string | null
  /** Standard Webhooks secrets (`v1,whsec_...`), for an HTTP hook. */
  readonly secrets: readonly string[]
  readonly timeoutMs: number
  readonly maxResponseBytes: number
}

export interface MintConfig {
  /** Minimal JWT: only these claims are forwarded (null = all). */
  readonly claimsAllowed: readonly string[] | null
  /** Lifetime of a minted token when the inbound token has no `exp`. */
  readonly ttlSeconds: number
  /** Minted tokens above this size are counted and logged (proxy/CDN header limits). */
  readonly warnBytes: number
  readonly kid: string | null
  /** Bound on minted tokens kept for reuse (0 = none: every request signs). */
  readonly cacheMaxEntries: number
}

export interface LogConfig {
  readonly level: LogLevel
  readonly pretty: boolean
}

export interface ShutdownConfig {
  /** Keep serving, not ready, so endpoints propagate. */
  readonly delayMs: number
  /** Longest wait for in-flight requests. */
  readonly deadlineMs: number
}

export interface Config {
  readonly server: ServerConfig
  readonly upstream: UpstreamConfig
  readonly jwt: JwtConfig
  readonly db: DbConfig
  readonly claims: ClaimsConfig
  readonly role: RoleConfig
  readonly anonymous: 'allow' | 'deny'
  readonly hook: HookConfig
  readonly mint: MintConfig
  readonly log: LogConfig
  readonly shutdown: ShutdownConfig
  /** The file this configuration came from, for SIGHUP reloads. */
  readonly source: string | null
}

export const DEFAULT_USER_QUERY =
  'select raw_app_meta_data as app_metadata, role, banned_until, deleted_at from auth.users where id = $1'
export const DEFAULT_SESSION_QUERY = 'select not_after from auth.sessions where id = $1'
