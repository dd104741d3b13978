// Configuration contract: every option once (env name, YAML key, type, default, meaning), before any stage is built.
import { z } from 'zod'
import { DEFAULT_SESSION_QUERY, DEFAULT_USER_QUERY, type LogLevel } from './types.js'

/** A configuration problem found at start; the message is one line that names the option. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/**
 * How one option's value is read: `schema` accepts a YAML value or an environment string and
 * yields the typed value. Failures without a message of their own are reported as
 * "must be {@link Kind.expect}".
 */
export interface Kind<T> {
  readonly schema: z.ZodType<T>
  readonly expect: string
}

/** One row of the configuration contract. */
export interface OptionSpec<K extends string = string, V = unknown> {
  /** Dotted YAML path, camelCase like {@link Config}. */
  readonly key: K
  readonly env: string
  readonly kind: Kind<unknown>
  /** `undefined` = required. */
  readonly default: V | undefined
  /** Why a required option is required, for the error message. */
  readonly required: string | null
  /** Never echoed; may come from `@/path` or `<ENV>_FILE`. */
  readonly secret: boolean
  /** An empty environment value is a value (not "unset"): only the session query uses it. */
  readonly emptyIsValue: boolean
  readonly defaultText: string
  readonly doc: string
}

interface Extra {
  readonly secret?: boolean
  readonly emptyIsValue?: boolean
  readonly defaultText?: string
}

function opt<const K extends string, T, const D extends T | null>(
  key: K,
  env: string,
  kind: Kind<T>,
  def: D,
  doc: string,
  extra: Extra = {},
): OptionSpec<K, T | D> {
  return {
    key,
    env,
    kind: kind as Kind<unknown>,
    default: def,
    required: null,
    secret: extra.secret ?? false,
    emptyIsValue: extra.emptyIsValue ?? false,
    defaultText: extra.defaultText ?? (def === null ? 'none' : String(def)),
    doc,
  }
}

function required<const K extends string, T>(
  key: K,
  env: string,
  kind: Kind<T>,
  why: string,
  doc: string,
  extra: Extra = {},
): OptionSpec<K, T> {
  return {
    key,
    env,
    kind: kind as Kind<unknown>,
    default: undefined,
    required: why,
    secret: extra.secret ?? false,
    emptyIsValue: false,
    defaultText: 'none: required',
    doc,
  }
}

// ---------------------------------------------------------------------------------------------
// Kinds. Environment values are strings; YAML values may already be numbers, booleans or lists.

const INT_TEXT = /^[+-]?\d+$/

function integer(min: number, max?: number): Kind<number> {
  const check = max === undefined ? z.number().int().min(min) : z.number().int().min(min).max(max)
  return {
    schema: z.union([z.number(), z.string().trim().regex(INT_TEXT).transform(Number)]).pipe(check),
    expect: max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
  }
}

const port = integer(0, 65535)

const boolean: Kind<boolean> = {
  // z.stringbool: true/false, 1/0, yes/no, on/off, y/n, enabled/disabled, any case.
  schema: z.union([z.boolean(), z.stringbool()]),
  expect: 'true or false',
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T): Kind<T[number]> {
  return { schema: z.enum(values), expect: `one of ${values.join(', ')}` }
}

const stringInput = z.union([z.string(), z.number().transform(String)])

const text: Kind<string> = { schema: stringInput.pipe(z.string().min(1)), expect: 'a non-empty string' }

/**
 * Key material keeps its bytes as given (only file content loses its trailing newline). In YAML a
 * JWK or JWK Set may also be written as a mapping: it is kept as its JSON text, the form the auth
 * and mint modules read.
 */
const keyMaterial: Kind<string> = {
  schema: z.union([
    z.string().min(1),
    z.record(z.string(), z.unknown()).transform((jwk) => JSON.stringify(jwk)),
  ]),
  expect: 'a non-empty string, or a JWK or JWK Set',
}

function httpUrl(): Kind<string> {
  return {
    schema: z.string().refine(isHttpUrl),
    expect: 'an http:// or https:// URL without query or fragment',
  }
}

function isHttpUrl(value: string): boolean {
  const url = URL.parse(value)
  return (
    url !== null &&
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.hostname !== '' &&
    url.search === '' &&
    url.hash === ''
  )
}

const postgresUrl: Kind<string> = {
  schema: z.string().regex(/^postgres(ql)?:\/\//i),
  expect: 'a postgres:// or postgresql:// URL',
}

/** PostgreSQL's unquoted identifier, at most NAMEDATALEN - 1 = 63 bytes (as Supabase Auth checks). */
export const PG_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

const identifier: Kind<string> = {
  schema: z.string().regex(PG_IDENTIFIER),
  expect: 'a PostgreSQL identifier (letters, digits and _, at most 63)',
}

const LOCAL_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

/** Supabase Auth's hook URI rules: a Postgres function, an HTTPS endpoint, or plain HTTP on loopback. */
export function isHookUri(value: string): boolean {
  const url = URL.parse(value)
  if (url === null || url.search !== '' || url.hash !== '') return false
  if (url.protocol === 'pg-functions:') {
    const parts = url.pathname.split('/')
    return (
      url.host === 'postgres' &&
      parts.length === 3 &&
      PG_IDENTIFIER.test(parts[1] ?? '') &&
      PG_IDENTIFIER.test(parts[2] ?? '')
    )
  }
  if (url.protocol === 'https:') return url.hostname !== ''
  return url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname)
}

const hookUri: Kind<string> = {
  schema: z.string().refine(isHookUri),
  expect: 'pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost',
}

/** Role names go into `SET ROLE` and into comma/colon lists: keep them plain. */
const ROLE_NAME = /^[^\s,:"]+$/

export function isRoleName(value: string): boolean {
  return ROLE_NAME.test(value) && Buffer.byteLength(value) <= 63
}

const ROLE_RULE = 'non-empty, no whitespace, commas, colons or quotes, at most 63 bytes'

const roleName: Kind<string> = {
  schema: z.string().refine(isRoleName),
  expect: `a role name (${ROLE_RULE})`,
}

/** A comma list from the environment, or a YAML sequence; empty entries are dropped. */
function listInput(separator: string) {
  return z.union([
    z.array(stringInput),
    z.string().transform((value) =>
      value
        .split(separator)
        .map((entry) => entry.trim())
        .filter((entry) => entry !== ''),
    ),
  ])
}

function roleList(): Kind<readonly string[]> {
  return {
    schema: listInput(',').transform((roles, ctx) => {
      if (roles.length === 0)
        ctx.issues.push({ code: 'custom', message: 'must list at least one role', input: roles })
      for (const role of roles) {
        if (!isRoleName(role)) {
          ctx.issues.push({
            code: 'custom',
            message: `has an invalid role name "${role}" (${ROLE_RULE})`,
            input: roles,
          })
          return z.NEVER
        }
      }
      return roles
    }),
    expect: 'a comma-separated list of role names',
  }
}

const CLAIM_NAME = /^\S+$/

const claimList: Kind<readonly string[]> = {
  schema: listInput(',').transform((claims, ctx) => {
    if (claims.length === 0) {
      ctx.issues.push({
        code: 'custom',
        message: 'must list at least one claim (leave it unset to forward all claims)',
        input: claims,
      })
    }
    for (const claim of claims) {
      if (!CLAIM_NAME.test(claim)) {
        ctx.issues.push({ code: 'custom', message: `has an invalid claim name "${claim}"`, input: claims })
      }
    }
    return claims
  }),
  expect: 'a comma-separated list of claim names',
}

/** Standard Webhooks symmetric secret, as Supabase Auth accepts it (24 to 64 bytes, base64). */
const HOOK_SECRET = /^v1,whsec_[A-Za-z0-9+/=]{32,88}$/

const hookSecrets: Kind<readonly string[]> = {
  schema: listInput('|').transform((secrets, ctx) => {
    for (let i = 0; i < secrets.length; i++) {
      // Name the position, never the value.
      if (!HOOK_SECRET.test(secrets[i]!)) {
        ctx.issues.push({
          code: 'custom',
          message: `entry ${i + 1} must look like v1,whsec_<base64, 32 to 88 characters>`,
          input: secrets,
        })
        return z.NEVER
      }
    }
    return secrets
  }),
  expect: 'a |-separated list of v1,whsec_... secrets',
}

/** `VALUE:role,VALUE:role` (split at the last colon: values may hold colons, roles may not), or a YAML mapping. */
const roleMap: Kind<ReadonlyMap<string, string>> = {
  // The union only checks the type; entries are parsed after it, so their messages survive.
  schema: z.union([z.string(), z.record(z.string(), stringInput)]).transform((input, ctx) => {
    const pairs: [string, string][] = []
    if (typeof input === 'string') {
      for (const raw of input.split(',')) {
        const entry = raw.trim()
        if (entry === '') continue
        const colon = entry.lastIndexOf(':')
        if (colon <= 0 || colon === entry.length - 1) {
          ctx.issues.push({ code: 'custom', message: `entry "${entry}" must be VALUE:role`, input })
          return z.NEVER
        }
        pairs.push([entry.slice(0, colon).trim(), entry.slice(colon + 1).trim()])
      }
    } else {
      pairs.push(...Object.entries(input))
    }
    const map = new Map<string, string>()
    for (const [from, to] of pairs) {
      if (!isRoleName(to)) {
        ctx.issues.push({
          code: 'custom',
          message: `maps "${from}" to an invalid role name "${to}" (${ROLE_RULE})`,
          input,
        })
        return z.NEVER
      }
      if (map.has(from)) {
        ctx.issues.push({ code: 'custom', message: `maps "${from}" twice`, input })
        return z.NEVER
      }
      map.set(from, to)
    }
    return map as ReadonlyMap<string, string>
  }),
  expect: 'VALUE:role pairs separated by commas, or a YAML mapping of VALUE: role',
}

/** Keys that would walk into Object.prototype when the role module follows the path. */
const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(['__proto__', 'prototype', 'constructor'])

/**
 * A dotted claim path; a leading `.` or `$.` (PostgREST's `jwt-role-claim-key` spellings) is
 * accepted and dropped. Returns the segments, or null when the path is not usable.
 */
export function parseClaimPath(value: string): string[] | null {
  const path = value.startsWith('$.') ? value.slice(2) : value.startsWith('.') ? value.slice(1) : value
  const segments = path.split('.')
  for (const segment of segments) {
    if (segment === '' || /\s/.test(segment) || FORBIDDEN_SEGMENTS.has(segment)) return null
  }
  return segments
}

const claimPath: Kind<string> = {
  schema: z.string().transform((value, ctx) => {
    const segments = parseClaimPath(value)
    if (segments === null) {
      ctx.issues.push({
        code: 'custom',
        message: `must be a dotted claim path like app_metadata.role, got ${JSON.stringify(value)}`,
        input: value,
      })
      return z.NEVER
    }
    return segments.join('.')
  }),
  expect: 'a dotted claim path like app_metadata.role',
}

const PARAM_1 = /\$1(?!\d)/

const userQuery: Kind<string> = {
  schema: z
    .string()
    .min(1)
    .refine((sql) => PARAM_1.test(sql), { message: 'must contain $1 (the user id)' }),
  expect: 'a SQL query with $1',
}

/** `off` or empty disables the session check (null). */
const sessionQuery: Kind<string | null> = {
  schema: z.string().transform((sql, ctx) => {
    if (sql.trim() === '' || sql.trim().toLowerCase() === 'off') return null
    if (!PARAM_1.test(sql)) {
      ctx.issues.push({ code: 'custom', message: 'must contain $1 (the session id), or be off', input: sql })
      return z.NEVER
    }
    return sql
  }),
  expect: 'a SQL query with $1, or off',
}

const LOG_LEVELS = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
] as const satisfies readonly LogLevel[]

// ---------------------------------------------------------------------------------------------
// The contract. Order = documentation order = validation order.

/**
 * Every configuration option. The environment mapping, the YAML shape, `--help`, the option
 * table in docs/configuration.md and its test all come from this one list.
 */
export const OPTIONS = [
  opt('server.host', 'GATEWAY_HOST', text, '0.0.0.0', 'Address of the proxy listener.'),
  opt('server.port', 'GATEWAY_PORT', port, 8080, 'Port of the proxy listener (0 = any free port).'),
  opt('server.adminHost', 'GATEWAY_ADMIN_HOST', text, '0.0.0.0', 'Address of the admin listener.'),
  opt(
    'server.adminPort',
    'GATEWAY_ADMIN_PORT',
    port,
    8081,
    'Port of the admin listener: `/live`, `/ready`, `/metrics`.',
  ),
  opt(
    'server.maxHeaderBytes',
    'GATEWAY_MAX_HEADER_BYTES',
    integer(1024),
    16384,
    'Largest request head accepted; larger ones get 431.',
  ),
  opt(
    'server.headersTimeoutMs',
    'GATEWAY_HEADERS_TIMEOUT_MS',
    integer(1),
    10000,
    'A client must send its whole request head within this time (slowloris).',
  ),
  opt(
    'server.requestTimeoutMs',
    'GATEWAY_REQUEST_TIMEOUT_MS',
    integer(0),
    0,
    'Upper bound on a whole request, body included; 0 = none, so long uploads stream.',
  ),
  opt(
    'server.keepAliveTimeoutMs',
    'GATEWAY_KEEP_ALIVE_TIMEOUT_MS',
    integer(1),
    65000,
    'Idle keep-alive time of client connections; keep it above the load balancer idle timeout.',
  ),
  opt(
    'server.trustForwardedHeaders',
    'GATEWAY_TRUST_FORWARDED',
    boolean,
    false,
    'Trust an inbound `X-Forwarded-For` and append to it (the gateway sits behind a load balancer).',
  ),

  opt('upstream.url', 'GATEWAY_UPSTREAM_URL', httpUrl(), 'http://127.0.0.1:3000', 'PostgREST base URL.'),
  required(
    'upstream.jwtSecret',
    'GATEWAY_UPSTREAM_JWT_SECRET',
    keyMaterial,
    'the key that signs tokens for PostgREST',
    'Key for minted tokens: an HS256 secret (at least 32 characters, shared with PostgREST `jwt-secret`) or a private JWK (ES256, RS256, EdDSA). `@/path` or `GATEWAY_UPSTREAM_JWT_SECRET_FILE` read it from a file.',
    { secret: true },
  ),
  opt(
    'upstream.jwtSecretIsBase64',
    'GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64',
    boolean,
    false,
    'The HS256 upstream secret is base64 (as PostgREST `jwt-secret-is-base64`).',
  ),
  opt(
    'upstream.timeoutMs',
    'GATEWAY_UPSTREAM_TIMEOUT_MS',
    integer(0),
    30000,
    'Time to wait for upstream response headers; 0 = none.',
  ),
  opt(
    'upstream.bodyTimeoutMs',
    'GATEWAY_UPSTREAM_BODY_TIMEOUT_MS',
    integer(0),
    30000,
    'Time allowed between two body chunks from upstream; 0 = none.',
  ),
  opt(
    'upstream.connectTimeoutMs',
    'GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS',
    integer(1),
    5000,
    'Time to open a connection to upstream.',
  ),
  opt(
    'upstream.connections',
    'GATEWAY_UPSTREAM_CONNECTIONS',
    integer(1),
    128,
    'Largest number of keep-alive connections to upstream.',
  ),

  opt(
    'jwt.secret',
    'GATEWAY_JWT_SECRET',
    keyMaterial,
    null,
    'Inbound keys in PostgREST `jwt-secret` formats: a string (HS256, at least 32 characters), a JWK or a JWKS; `@/path` or `GATEWAY_JWT_SECRET_FILE` read it from a file. Without it and without a JWKS URL, tokens get 500 PGRST300.',
    { secret: true },
  ),
  opt(
    'jwt.secretIsBase64',
    'GATEWAY_JWT_SECRET_IS_BASE64',
    boolean,
    false,
    'The inbound HS256 secret is base64 (as PostgREST `jwt-secret-is-base64`).',
  ),
  opt(
    'jwt.jwksUrl',
    'GATEWAY_JWKS_URL',
    httpUrl(),
    null,
    'Remote JWKS for inbound tokens: refetched on an unknown `kid` (with a cooldown); the last good set is kept.',
  ),
  opt('jwt.aud', 'GATEWAY_JWT_AUD', text, null, 'Expected audience (PostgREST `jwt-aud`).'),
  opt('jwt.iss', 'GATEWAY_JWT_ISS', text, null, 'Expected issuer.'),
  opt(
    'jwt.clockSkewSeconds',
    'GATEWAY_JWT_CLOCK_SKEW_SECONDS',
    integer(0),
    30,
    'Leeway for `exp`, `nbf` and `iat` (PostgREST uses a fixed 30 s).',
  ),
  opt(
    'jwt.cacheMaxEntries',
    'GATEWAY_JWT_CACHE_MAX_ENTRIES',
    integer(1),
    100000,
    'Verified tokens kept in memory.',
  ),
  opt(
    'jwt.jwksMaxAgeSeconds',
    'GATEWAY_JWKS_MAX_AGE_SECONDS',
    integer(1),
    600,
    'Longest a remote key set is trusted without a refetch (Cache-Control is capped by it).',
  ),
  opt(
    'jwt.jwksCooldownSeconds',
    'GATEWAY_JWKS_COOLDOWN_SECONDS',
    integer(0),
    30,
    'Minimum time between two refetches triggered by an unknown `kid`.',
  ),
  opt('jwt.jwksTimeoutMs', 'GATEWAY_JWKS_TIMEOUT_MS', integer(1), 5000, 'Time allowed for one JWKS fetch.'),

  opt(
    'db.url',
    'GATEWAY_DB_URL',
    postgresUrl,
    null,
    'PostgreSQL for fresh claims; unset = claims come from the token. `@/path` or `GATEWAY_DB_URL_FILE` read it from a file.',
    { secret: true },
  ),
  opt(
    'db.poolSize',
    'GATEWAY_DB_POOL_SIZE',
    integer(1),
    4,
    'Connections for claim lookups (plus one listener).',
  ),
  opt(
    'db.lookupTimeoutMs',
    'GATEWAY_DB_LOOKUP_TIMEOUT_MS',
    integer(1),
    2000,
    'Time allowed for one claims lookup.',
  ),
  opt(
    'db.userQuery',
    'GATEWAY_DB_USER_QUERY',
    userQuery,
    DEFAULT_USER_QUERY,
    'User query, `$1` = user id (`sub`); returns `app_metadata` jsonb and optional `role`, `banned_until`, `deleted_at`.',
    { defaultText: '`' + DEFAULT_USER_QUERY + '`' },
  ),
  opt(
    'db.sessionQuery',
    'GATEWAY_DB_SESSION_QUERY',
    sessionQuery,
    DEFAULT_SESSION_QUERY,
    'Session query, `$1` = `session_id`; no row = signed out (401). `off` or empty disables the check.',
    { emptyIsValue: true, defaultText: '`' + DEFAULT_SESSION_QUERY + '`' },
  ),
  opt(
    'db.notifyChannel',
    'GATEWAY_DB_NOTIFY_CHANNEL',
    identifier,
    'postgrest_gateway',
    'Channel the triggers of `sql/install.sql` notify; every replica LISTENs on it.',
  ),

  opt(
    'claims.cacheMaxEntries',
    'GATEWAY_CLAIMS_CACHE_MAX_ENTRIES',
    integer(1),
    100000,
    'Users whose current claims are kept in memory.',
  ),
  opt(
    'claims.ttlSeconds',
    'GATEWAY_CLAIMS_TTL_SECONDS',
    integer(1),
    60,
    'Safety net: a cached entry is re-read after this long even without a notification.',
  ),
  opt(
    'claims.maxStaleSeconds',
    'GATEWAY_CLAIMS_MAX_STALE_SECONDS',
    integer(0),
    300,
    'While the database cannot answer, an expired entry is served for at most this long.',
  ),
  opt(
    'claims.disconnectedTtlSeconds',
    'GATEWAY_CLAIMS_DISCONNECTED_TTL_SECONDS',
    integer(0),
    5,
    'While the listener is down (notifications may be missed), entries are trusted for at most this long.',
  ),
  opt(
    'claims.onDatabaseDown',
    'GATEWAY_CLAIMS_ON_DB_DOWN',
    oneOf(['fail', 'token']),
    'fail',
    'When claims cannot be read: `fail` answers 503, `token` uses the token’s own claims.',
  ),

  opt(
    'role.claim',
    'GATEWAY_ROLE_CLAIM',
    claimPath,
    'app_metadata.role',
    'Dotted path of the role in the fresh claims (a leading `.` or `$.` is accepted).',
  ),
  opt(
    'role.map',
    'GATEWAY_ROLE_MAP',
    roleMap,
    new Map<string, string>() as ReadonlyMap<string, string>,
    'Mapping from claim values to PostgreSQL roles: `VALUE:role,VALUE:role` (YAML: a mapping).',
    { defaultText: 'none' },
  ),
  opt(
    'role.allowed',
    'GATEWAY_ROLES_ALLOWED',
    roleList(),
    ['authenticated'] as readonly string[],
    'Allow-list of roles a request may run as; any other role is refused with 403.',
    { defaultText: 'authenticated' },
  ),
  opt(
    'role.default',
    'GATEWAY_DEFAULT_ROLE',
    roleName,
    'authenticated',
    'Role when the claim is absent; must be in the allow-list.',
  ),
  opt(
    'role.anonRole',
    'GATEWAY_ANON_ROLE',
    roleName,
    'anon',
    'PostgREST `db-anon-role`: an API key (a token without `sub`) with this role goes through as an anonymous request, unless the role is in the allow-list.',
  ),
  opt(
    'role.allowPrivileged',
    'GATEWAY_ALLOW_PRIVILEGED_ROLES',
    boolean,
    false,
    'Explicit opt-in to put superuser-like roles (`service_role`, `postgres`, `pg_*`, ...) in the allow-list.',
  ),

  opt(
    'anonymous',
    'GATEWAY_ANONYMOUS',
    oneOf(['allow', 'deny']),
    'allow',
    'Requests without a token: `allow` passes them to PostgREST (`db-anon-role`), `deny` answers 401 PGRST302.',
  ),

  opt(
    'hook.uri',
    'GATEWAY_HOOK_URI',
    hookUri,
    null,
    'Custom access token hook: `pg-functions://postgres/<schema>/<function>` (needs the database) or `https://...`.',
  ),
  opt(
    'hook.secrets',
    'GATEWAY_HOOK_SECRETS',
    hookSecrets,
    [] as readonly string[],
    'Standard Webhooks secrets for an HTTP hook, `v1,whsec_...`, several separated by `|`. `@/path` or `GATEWAY_HOOK_SECRETS_FILE` read them from a file.',
    { secret: true, defaultText: 'none' },
  ),
  opt('hook.timeoutMs', 'GATEWAY_HOOK_TIMEOUT_MS', integer(1), 2000, 'Time allowed for one hook call.'),
  opt(
    'hook.maxResponseBytes',
    'GATEWAY_HOOK_MAX_RESPONSE_BYTES',
    integer(1),
    65536,
    'Largest hook response accepted.',
  ),

  opt(
    'mint.claimsAllowed',
    'GATEWAY_MINT_CLAIMS',
    claimList,
    null,
    'Minimal JWT: only these claims are forwarded (comma list); unset = all claims.',
    { defaultText: 'none (all claims)' },
  ),
  opt(
    'mint.ttlSeconds',
    'GATEWAY_MINT_TTL_SECONDS',
    integer(1),
    3600,
    'Lifetime of a minted token when the inbound token has no `exp`.',
  ),
  opt(
    'mint.warnBytes',
    'GATEWAY_MINT_WARN_BYTES',
    integer(1),
    4096,
    'Minted tokens above this size are counted and logged (proxy and CDN header limits).',
  ),
  opt(
    'mint.cacheMaxEntries',
    'GATEWAY_MINT_CACHE_MAX_ENTRIES',
    integer(0),
    10000,
    'Minted tokens kept for reuse (about 1 KB each; the least recently used are signed again when needed, a few microseconds). 0 = sign on every request.',
  ),
  opt(
    'mint.kid',
    'GATEWAY_UPSTREAM_JWT_KID',
    text,
    null,
    '`kid` header of minted tokens; a private JWK’s own `kid` wins.',
  ),

  opt('log.level', 'GATEWAY_LOG_LEVEL', oneOf(LOG_LEVELS), 'info', 'pino level.'),
  opt(
    'log.pretty',
    'GATEWAY_LOG_PRETTY',
    boolean,
    false,
    'Human-readable logs instead of JSON (development).',
  ),

  opt(
    'shutdown.delayMs',
    'GATEWAY_SHUTDOWN_DELAY_MS',
    integer(0),
    5000,
    'On SIGTERM: keep serving, not ready, this long so endpoints propagate.',
  ),
  opt(
    'shutdown.deadlineMs',
    'GATEWAY_SHUTDOWN_DEADLINE_MS',
    integer(0),
    30000,
    'Then: longest wait for in-flight requests.',
  ),
] as const

type AnyOption = (typeof OPTIONS)[number]
export type OptionKey = AnyOption['key']

/** The typed value of every option, keyed by its YAML path. */
export type OptionValues = {
  [O in AnyOption as O['key']]: O extends OptionSpec<string, infer V> ? V : never
}

/** Variables that configure the loader itself rather than an option. */
export const LOADER_ENV: readonly { readonly env: string; readonly doc: string }[] = [
  { env: 'GATEWAY_CONFIG', doc: 'Path of the YAML file (`--config` wins).' },
]

/** The options whose value may be read from a file: `@/path` or `<ENV>_FILE`. */
export const SECRET_OPTIONS: readonly OptionSpec[] = OPTIONS.filter((option) => option.secret)

/** Roles that bypass RLS or administer the cluster; allowed only with `role.allowPrivileged`. */
export const PRIVILEGED_ROLES: ReadonlySet<string> = new Set([
  'postgres',
  'service_role',
  'supabase_admin',
  'supabase_auth_admin',
  'supabase_storage_admin',
  'supabase_functions_admin',
  'supabase_replication_admin',
  'supabase_read_only_user',
  'supabase_realtime_admin',
  'dashboard_user',
  'pgbouncer',
  'authenticator',
  'rds_superuser',
  'rdsadmin',
  'azure_superuser',
  'azure_pg_admin',
  'cloudsqlsuperuser',
  'alloydbsuperuser',
])

/** Case-insensitive: an unquoted identifier folds to lower case in SQL. */
export function isPrivilegedRole(role: string): boolean {
  const lower = role.toLowerCase()
  return PRIVILEGED_ROLES.has(lower) || lower.startsWith('pg_')
}

// ---------------------------------------------------------------------------------------------
// Documentation, generated from OPTIONS.

function cell(value: string): string {
  return value.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

/** The Markdown table of every option, as docs/configuration.md carries it. */
export function renderOptionsTable(): string {
  const rows = ['| env | YAML key | default | meaning |', '|---|---|---|---|']
  for (const env of LOADER_ENV) rows.push(`| \`${env.env}\` | | none | ${cell(env.doc)} |`)
  for (const option of OPTIONS) {
    const def =
      option.defaultText.startsWith('`') || option.defaultText.startsWith('none')
        ? option.defaultText
        : '`' + option.defaultText + '`'
    rows.push(`| \`${option.env}\` | \`${option.key}\` | ${cell(def)} | ${cell(option.doc)} |`)
  }
  return rows.join('\n') + '\n'
}
