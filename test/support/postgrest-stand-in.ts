// Test support: a PostgREST stand-in behind the gateway; re-verifies the minted token as PostgREST does, then runs SQL under RLS.
//
// An independent implementation of POSTGREST-CONTRACT.md (it shares only the error table with the
// gateway): bearer extraction, key selection, jose signature checks, PostgREST's claim rules and
// role fallback, then one transaction that sets role and request.* settings like PostgREST and runs
// a small, safe subset of PostgREST's REST API. Plus test endpoints under /__standin/.
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type CryptoKey, compactVerify, importJWK, type JWK } from 'jose'
import postgres from 'postgres'
import { errorResponse, GatewayError } from '../../src/errors/index.js'

export interface StandInOptions {
  /** Connection URL; use the `authenticator` login so that only granted roles can be taken. */
  dbUrl: string
  /** PostgREST's `jwt-secret`: a string (>= 32 chars), a JWK or a JWKS, as JSON text; null = none. */
  jwtSecret: string | null
  /** PostgREST's `jwt-secret-is-base64`. */
  jwtSecretIsBase64?: boolean
  /** PostgREST's `jwt-aud`. */
  jwtAud?: string | null
  /** PostgREST's `db-anon-role`; null = anonymous requests get 401 PGRST302. */
  anonRole: string | null
  /** PostgREST's `jwt-role-claim-key`, e.g. `.role` or `.app_metadata.role`. */
  roleClaimKey?: string
  /** Exposed schema (`db-schemas`, one). */
  schema?: string
  port?: number
  host?: string
  /** Epoch seconds, for time-claim tests. */
  now?: () => number
}

/** What reached the stand-in, for assertions (e.g. the exact Authorization header the gateway sent). */
export interface StandInRequest {
  readonly method: string
  /** Path with query string, as received. */
  readonly url: string
  readonly path: string
  /** Lower-cased names; repeated headers keep every value, in order. */
  readonly headers: Readonly<Record<string, readonly string[]>>
  readonly authorization: string | null
}

export interface StandIn {
  readonly url: string
  readonly port: number
  readonly requests: StandInRequest[]
  /** Requests whose response has not closed yet (a proxy that left one behind keeps this above 0). */
  readonly inFlight: number
  /** Requests whose connection closed before the response was complete (a client or proxy abort). */
  readonly aborted: number
  close(): Promise<void>
}

/** What the auth step decided: PostgREST's AuthResult. */
interface AuthResult {
  readonly role: string
  readonly claims: Record<string, unknown>
  /** A token was sent (PostgREST's `authed`, which turns 42501 into 403 instead of 401). */
  readonly authed: boolean
}

// PostgREST verifies these and nothing else (no PS*, no `none`).
const ALGORITHMS = new Set([
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
])
const EC_CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }

const JSON_TYPE = 'application/json; charset=utf-8'
const SKEW_SECONDS = 30

/** Parses PostgREST's `jwt-secret` into JWKs (string -> one oct key; JSON -> JWK or JWKS). */
function parseSecret(secret: string, isBase64: boolean): JWK[] {
  const trimmed = secret.trim()
  if (trimmed.startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(trimmed)
    } catch {
      parsed = null
    }
    if (parsed !== null && typeof parsed === 'object') {
      const keys = (parsed as { keys?: unknown }).keys
      if (Array.isArray(keys)) return keys as JWK[]
      if (typeof (parsed as JWK).kty === 'string') return [parsed as JWK]
    }
  }
  const bytes = isBase64 ? Buffer.from(secret, 'base64') : Buffer.from(secret, 'utf8')
  if (!isBase64 && secret.length < 32)
    throw new Error('jwt-secret: a plain secret must have at least 32 characters')
  return [{ kty: 'oct', k: bytes.toString('base64url') }]
}

/** jose-jwt's compatibility check: key type and curve fit the algorithm, and `alg` when the key has one. */
function keyFits(jwk: JWK, alg: string): boolean {
  if (jwk.use === 'enc') return false
  if (jwk.alg !== undefined && jwk.alg !== alg) return false
  if (alg.startsWith('HS')) return jwk.kty === 'oct'
  if (alg.startsWith('RS')) return jwk.kty === 'RSA'
  if (alg.startsWith('ES')) return jwk.kty === 'EC' && jwk.crv === EC_CURVES[alg]
  return jwk.kty === 'OKP' && (jwk.crv === 'Ed25519' || jwk.crv === 'Ed448')
}

function decodeJsonPart(part: string): unknown {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new Error('not base64url')
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

/** PostgREST's `sciToInt`: an integral number in Int64 range, else 0. */
function toSeconds(value: number): number {
  return Number.isInteger(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER ? value : 0
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

/** PostgREST's JSPath: `.a.b`, `.a[0]`, `$.a` (v16). Filters are not supported by the stand-in. */
function parseRolePath(key: string): (string | number)[] {
  const path: (string | number)[] = []
  const source = key.startsWith('$') ? key.slice(1) : key
  const re = /\.("(?:[^"]*)"|[^.[\]]+)|\[(\d+)\]/y
  let index = 0
  while (index < source.length) {
    re.lastIndex = index
    const match = re.exec(source)
    if (match === null) throw new Error(`jwt-role-claim-key: cannot parse ${key}`)
    if (match[2] !== undefined) path.push(Number(match[2]))
    else path.push(match[1]!.replace(/^"|"$/g, ''))
    index = re.lastIndex
  }
  return path
}

class Verifier {
  readonly #jwks: JWK[] | null
  readonly #aud: string | null
  readonly #rolePath: (string | number)[]
  readonly #anonRole: string | null
  readonly #now: () => number
  readonly #imported = new Map<JWK, Map<string, Promise<CryptoKey | Uint8Array>>>()

  constructor(options: StandInOptions) {
    this.#jwks =
      options.jwtSecret === null ? null : parseSecret(options.jwtSecret, options.jwtSecretIsBase64 === true)
    this.#aud = options.jwtAud ?? null
    this.#rolePath = parseRolePath(options.roleClaimKey ?? '.role')
    this.#anonRole = options.anonRole
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000))
  }

  /** PostgREST's order: bearer -> secret -> parts -> decode (alg, keys, signature) -> claims -> role. */
  async authenticate(authorization: string | null): Promise<AuthResult> {
    const token = extractBearer(authorization)
    if (token === null) {
      if (this.#anonRole === null) throw new GatewayError('AnonymousDisabled')
      return { role: this.#anonRole, claims: { role: this.#anonRole }, authed: false }
    }
    if (this.#jwks === null) throw new GatewayError('JwtSecretMissing')
    if (token === '') throw new GatewayError('JwtEmpty')
    const parts = token.split('.')
    if (parts.length !== 3) {
      throw new GatewayError('JwtParts', { message: `Expected 3 parts in JWT; got ${parts.length}` })
    }
    const payload = await this.#verifySignature(token, parts[0]!)
    let claims: unknown
    try {
      claims = JSON.parse(Buffer.from(payload).toString('utf8'))
    } catch {
      throw new GatewayError('JwtClaimsParse')
    }
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
      throw new GatewayError('JwtClaimsParse')
    }
    const object = claims as Record<string, unknown>
    this.#checkClaims(object)
    const found = this.#walkRole(object)
    let role: string
    if (found === undefined) {
      // PostgREST: no role at the claim path -> db-anon-role, never `authenticated`.
      if (this.#anonRole === null) throw new GatewayError('AnonymousDisabled')
      role = this.#anonRole
    } else {
      role = typeof found === 'string' ? found : JSON.stringify(found)
    }
    return { role, claims: { ...object, role }, authed: true }
  }

  async #verifySignature(token: string, headerPart: string): Promise<Uint8Array> {
    let header: unknown
    try {
      header = decodeJsonPart(headerPart)
    } catch {
      throw new GatewayError('JwtCrypto')
    }
    if (header === null || typeof header !== 'object') throw new GatewayError('JwtCrypto')
    const { alg, kid } = header as { alg?: unknown; kid?: unknown }
    if (typeof alg !== 'string' || !ALGORITHMS.has(alg)) throw new GatewayError('JwtBadAlgorithm')
    // jose-jwt: a token with a kid is tried only with keys carrying that kid.
    const candidates = this.#jwks!.filter(
      (jwk) => keyFits(jwk, alg) && (kid === undefined || (typeof kid === 'string' && jwk.kid === kid)),
    )
    if (candidates.length === 0) throw new GatewayError('JwtNoSuitableKey')
    for (const jwk of candidates) {
      let key: CryptoKey | Uint8Array
      try {
        key = await this.#import(jwk, alg)
      } catch {
        continue
      }
      try {
        const { payload } = await compactVerify(token, key, { algorithms: [alg] })
        return payload
      } catch (err) {
        const code = (err as { code?: string }).code
        if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') continue
        throw new GatewayError('JwtCrypto', { cause: err })
      }
    }
    throw new GatewayError('JwtBadSignature')
  }

  #import(jwk: JWK, alg: string): Promise<CryptoKey | Uint8Array> {
    let byAlg = this.#imported.get(jwk)
    if (byAlg === undefined) {
      byAlg = new Map()
      this.#imported.set(jwk, byAlg)
    }
    let key = byAlg.get(alg)
    if (key === undefined) {
      key = importJWK({ ...jwk, alg }, alg)
      byAlg.set(alg, key)
    }
    return key
  }

  /** PostgREST's checkForErrors: exp, nbf, iat, aud, first failure wins; null counts as absent. */
  #checkClaims(claims: Record<string, unknown>): void {
    const now = this.#now()
    const exp = claims['exp']
    if (exp !== undefined && exp !== null) {
      if (typeof exp !== 'number') throw new GatewayError('JwtExpNotNumber')
      if (now - SKEW_SECONDS > toSeconds(exp)) throw new GatewayError('JwtExpired')
    }
    const nbf = claims['nbf']
    if (nbf !== undefined && nbf !== null) {
      if (typeof nbf !== 'number') throw new GatewayError('JwtNbfNotNumber')
      if (now + SKEW_SECONDS < toSeconds(nbf)) throw new GatewayError('JwtNotYetValid')
    }
    const iat = claims['iat']
    if (iat !== undefined && iat !== null) {
      if (typeof iat !== 'number') throw new GatewayError('JwtIatNotNumber')
      if (now + SKEW_SECONDS < toSeconds(iat)) throw new GatewayError('JwtIssuedAtFuture')
    }
    const aud = claims['aud']
    if (aud !== undefined && aud !== null) {
      if (typeof aud === 'string') {
        if (this.#aud !== null && aud !== this.#aud) throw new GatewayError('JwtNotInAudience')
      } else if (isStringArray(aud)) {
        if (this.#aud !== null && aud.length > 0 && !aud.includes(this.#aud)) {
          throw new GatewayError('JwtNotInAudience')
        }
      } else {
        throw new GatewayError('JwtAudNotStringOrArray')
      }
    }
  }

  #walkRole(claims: Record<string, unknown>): unknown {
    let value: unknown = claims
    for (const step of this.#rolePath) {
      if (typeof step === 'number') {
        if (!Array.isArray(value)) return undefined
        value = value[step]
      } else {
        if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
        value = Object.hasOwn(value, step) ? (value as Record<string, unknown>)[step] : undefined
      }
      if (value === undefined) return undefined
    }
    return value
  }
}

/** PostgREST: first Authorization header; `Bearer` in any case; other schemes are anonymous. */
function extractBearer(authorization: string | null): string | null {
  if (authorization === null) return null
  const value = authorization.trim()
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  if (scheme.toLowerCase() !== 'bearer') return null
  return space === -1 ? '' : value.slice(space + 1).trim()
}

/** Headers as PostgREST reads them: names lower-cased, repeated values kept in order. */
function headerLists(req: IncomingMessage): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null)
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const list = out[name]
    if (list === undefined) out[name] = [raw[i + 1]!]
    else list.push(raw[i + 1]!)
  }
  return out
}

function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  if (header === undefined) return out
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const name = pair.slice(0, eq).trim()
    if (name !== '') out[name] = pair.slice(eq + 1).trim()
  }
  return out
}

/** Prefer headers merged (PostgREST reads every one), `name=value` pairs; unknown ones ignored. */
function parsePrefer(lists: Record<string, string[]>): Map<string, string> {
  const prefs = new Map<string, string>()
  for (const header of lists['prefer'] ?? []) {
    for (const item of header.split(',')) {
      const [name, value] = item.trim().split('=', 2)
      if (name !== undefined && name !== '') prefs.set(name.trim(), (value ?? '').trim())
    }
  }
  return prefs
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** An error PostgREST answers with (PGRST1xx/2xx) that the gateway's table does not list. */
class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: string | null = null,
    readonly hint: string | null = null,
  ) {
    super(message)
  }
}

interface PgErrorLike {
  code: string
  message: string
  detail?: string
  hint?: string
}

function isPgError(err: unknown): err is PgErrorLike {
  return (
    err instanceof Error &&
    (err as { name?: string }).name === 'PostgresError' &&
    typeof (err as { code?: unknown }).code === 'string'
  )
}

/** PostgREST's mapSQLtoHTTP, for the codes a test can meet. */
function pgStatus(code: string, message: string, authed: boolean): number {
  if (code === '22023') return message.startsWith('role') && message.endsWith('does not exist') ? 401 : 400
  if (code === '42501') return authed ? 403 : 401
  if (code === '23503' || code === '23505') return 409
  if (code === '25006') return 405
  if (code === '42883' || code === '42P01') return 404
  if (code === 'P0001') return 400
  if (code === '57P01') return 503
  if (code.startsWith('08') || code.startsWith('53')) return code === '53400' ? 500 : 503
  if (code.startsWith('0L') || code.startsWith('0P') || code.startsWith('28')) return 403
  if (/^(09|25|2D|38|39|3B|40|54|55|57|58|F0|HV|P0|XX)/.test(code) || code === '42P17') return 500
  return 400
}

interface Column {
  readonly name: string
  readonly type: string
}

interface TableInfo {
  readonly columns: Map<string, Column>
}

interface FunctionInfo {
  readonly args: Column[]
  readonly returnsSet: boolean
  readonly returnsComposite: boolean
}

const FILTER_OPERATORS: Record<string, string> = {
  eq: '=',
  neq: '<>',
  gt: '>',
  gte: '>=',
  lt: '<',
  lte: '<=',
  like: 'like',
  ilike: 'ilike',
}
// Every value is sent as text and cast in SQL: postgres.js would otherwise serialise a string with
// the described parameter type's serialiser (a boolean 'true' would become 'f').
const RESERVED_PARAMS = new Set(['select', 'order', 'limit', 'offset', 'columns', 'on_conflict'])

class StandInServer {
  readonly requests: StandInRequest[] = []
  inFlight = 0
  aborted = 0
  readonly #sql: postgres.Sql
  readonly #verifier: Verifier
  readonly #schema: string
  readonly #server: Server

  constructor(options: StandInOptions) {
    this.#sql = postgres(options.dbUrl, { max: 10, onnotice: () => {}, idle_timeout: 30 })
    this.#verifier = new Verifier(options)
    this.#schema = options.schema ?? 'public'
    this.#server = createServer((req, res) => {
      this.inFlight++
      res.once('close', () => {
        this.inFlight--
        if (!res.writableFinished) this.aborted++
      })
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent)
          sendJson(res, 500, { code: 'XX000', details: null, hint: null, message: String(err) })
        else res.destroy()
      })
    })
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject)
        resolve()
      })
    })
    return this.#server.address() as AddressInfo
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
    await this.#sql.end({ timeout: 1 })
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const lists = headerLists(req)
    const url = new URL(req.url ?? '/', 'http://stand-in')
    const authorization = lists['authorization']?.[0] ?? null
    this.requests.push({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      path: url.pathname,
      headers: lists,
      authorization,
    })

    if (url.pathname.startsWith('/__standin/')) {
      await this.#testEndpoint(req, res, url, lists, authorization)
      return
    }

    let auth: AuthResult
    try {
      auth = await this.#verifier.authenticate(authorization)
    } catch (err) {
      if (err instanceof GatewayError) {
        const { status, headers, body } = errorResponse(err)
        res.writeHead(status, headers)
        res.end(body)
        return
      }
      throw err
    }
    try {
      await this.#rest(req, res, url, lists, auth)
    } catch (err) {
      if (err instanceof RestError) {
        sendJson(
          res,
          err.status,
          { code: err.code, details: err.details, hint: err.hint, message: err.message },
          {
            'proxy-status': `PostgREST; error=${err.code}`,
          },
        )
        return
      }
      if (isPgError(err)) {
        const status = pgStatus(err.code, err.message, auth.authed)
        const headers: Record<string, string> = { 'proxy-status': `PostgREST; error=${err.code}` }
        if (status === 401) headers['www-authenticate'] = 'Bearer'
        const body = {
          code: err.code,
          details: err.detail ?? null,
          hint: err.hint ?? null,
          message: err.message,
        }
        sendJson(res, status, body, headers)
        return
      }
      throw err
    }
  }

  /** The per-request settings, in one statement, as PostgREST sets them. */
  async #begin<T>(
    req: IncomingMessage,
    url: URL,
    lists: Record<string, string[]>,
    auth: AuthResult,
    body: (tx: postgres.TransactionSql) => Promise<T>,
  ): Promise<T> {
    const headers: Record<string, string> = {}
    for (const [name, values] of Object.entries(lists)) {
      // PostgREST: cookie goes to request.cookies only; a repeated header keeps its last value.
      if (name !== 'cookie') headers[name] = values[values.length - 1]!
    }
    const cookies = parseCookies(lists['cookie']?.join('; '))
    // postgres.js occasionally fails a transaction under bursts of concurrent requests with an
    // internal error (a TypeError, UNSAFE_TRANSACTION) before anything ran: try that once more.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#transaction(req, url, headers, cookies, auth, body)
      } catch (err) {
        const internal = err instanceof TypeError || (err as { code?: unknown }).code === 'UNSAFE_TRANSACTION'
        if (!internal || attempt >= 3) throw err
      }
    }
  }

  async #transaction<T>(
    req: IncomingMessage,
    url: URL,
    headers: Record<string, string>,
    cookies: unknown,
    auth: AuthResult,
    body: (tx: postgres.TransactionSql) => Promise<T>,
  ): Promise<T> {
    const result = await this.#sql.begin(async (tx) => {
      await tx`select
        set_config('search_path', ${quoteIdent(this.#schema)}, true),
        set_config('role', ${auth.role}, true),
        set_config('request.jwt.claims', ${JSON.stringify(auth.claims)}, true),
        set_config('request.method', ${req.method ?? 'GET'}, true),
        set_config('request.path', ${url.pathname}, true),
        set_config('request.headers', ${JSON.stringify(headers)}, true),
        set_config('request.cookies', ${JSON.stringify(cookies)}, true)`
      return await body(tx)
    })
    return result as T
  }

  async #rest(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    lists: Record<string, string[]>,
    auth: AuthResult,
  ): Promise<void> {
    const segments = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent)
    const prefs = parsePrefer(lists)
    if (segments.length === 2 && segments[0] === 'rpc') {
      if (req.method !== 'POST' && req.method !== 'GET') {
        throw new RestError(405, 'PGRST101', `Cannot use the ${req.method} method on RPC`)
      }
      await this.#rpc(req, res, url, lists, auth, segments[1]!)
      return
    }
    if (segments.length !== 1) throw new RestError(404, 'PGRST125', 'Invalid path specified in request URL')
    const table = await this.#table(segments[0]!)
    if (req.method === 'GET' || req.method === 'HEAD') {
      await this.#read(req, res, url, lists, auth, segments[0]!, table, prefs)
      return
    }
    if (req.method === 'POST') {
      await this.#insert(req, res, url, lists, auth, segments[0]!, table, prefs)
      return
    }
    throw new RestError(405, 'PGRST117', `Unsupported HTTP method: ${req.method}`)
  }

  async #table(name: string): Promise<TableInfo> {
    const rows = await this.#sql<{ name: string; type: string }[]>`
      select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${this.#schema} and c.relname = ${name} and c.relkind in ('r', 'v', 'm', 'p', 'f')
        and a.attnum > 0 and not a.attisdropped
      order by a.attnum`
    if (rows.length === 0) {
      throw new RestError(
        404,
        'PGRST205',
        `Could not find the table '${this.#schema}.${name}' in the schema cache`,
      )
    }
    return { columns: new Map(rows.map((row) => [row.name, { name: row.name, type: row.type }])) }
  }

  #column(table: TableInfo, tableName: string, name: string): Column {
    const column = table.columns.get(name)
    if (column === undefined) {
      throw new RestError(400, '42703', `column ${tableName}.${name} does not exist`)
    }
    return column
  }

  /** WHERE and ORDER BY from the query string; values are parameters, identifiers are quoted. */
  #where(url: URL, table: TableInfo, tableName: string, params: unknown[]): string {
    const clauses: string[] = []
    for (const [key, raw] of url.searchParams) {
      if (RESERVED_PARAMS.has(key)) continue
      const column = this.#column(table, tableName, key)
      const negate = raw.startsWith('not.')
      const expr = negate ? raw.slice(4) : raw
      const dot = expr.indexOf('.')
      const op = dot === -1 ? expr : expr.slice(0, dot)
      const value = dot === -1 ? '' : expr.slice(dot + 1)
      let clause: string
      if (op === 'is') {
        const lowered = value.toLowerCase()
        if (!['null', 'true', 'false', 'unknown'].includes(lowered)) {
          throw new RestError(400, 'PGRST100', `"failed to parse filter (${raw})" (line 1, column 1)`)
        }
        clause = `${quoteIdent(column.name)} is ${lowered}`
      } else if (op === 'in') {
        const inner = value.replace(/^\(/, '').replace(/\)$/, '')
        const items = inner === '' ? [] : inner.split(',').map((item) => item.replace(/^"|"$/g, ''))
        const placeholders = items.map((item) => {
          params.push(item)
          return `$${params.length}::text::${column.type}`
        })
        clause = `${quoteIdent(column.name)} = any(array[${placeholders.join(', ')}]::${column.type}[])`
      } else {
        const sqlOp = FILTER_OPERATORS[op]
        if (sqlOp === undefined) {
          throw new RestError(400, 'PGRST100', `"failed to parse filter (${raw})" (line 1, column 1)`)
        }
        params.push(op === 'like' || op === 'ilike' ? value.replaceAll('*', '%') : value)
        const cast = op === 'like' || op === 'ilike' ? 'text' : column.type
        const lhs =
          cast === 'text' && column.type !== 'text'
            ? `${quoteIdent(column.name)}::text`
            : quoteIdent(column.name)
        clause = `${lhs} ${sqlOp} $${params.length}::text::${cast}`
      }
      clauses.push(negate ? `not (${clause})` : clause)
    }
    return clauses.length === 0 ? '' : ` where ${clauses.join(' and ')}`
  }

  #orderBy(url: URL, table: TableInfo, tableName: string): string {
    const order = url.searchParams.get('order')
    if (order === null || order === '') return ''
    const terms = order.split(',').map((term) => {
      const [name, ...mods] = term.split('.')
      const column = this.#column(table, tableName, name ?? '')
      let sql = quoteIdent(column.name)
      for (const mod of mods) {
        if (mod === 'asc' || mod === 'desc') sql += ` ${mod}`
        else if (mod === 'nullsfirst') sql += ' nulls first'
        else if (mod === 'nullslast') sql += ' nulls last'
        else throw new RestError(400, 'PGRST100', `"failed to parse order (${order})" (line 1, column 1)`)
      }
      return sql
    })
    return ` order by ${terms.join(', ')}`
  }

  #selectList(url: URL, table: TableInfo, tableName: string): string {
    const select = url.searchParams.get('select')
    if (select === null || select === '' || select === '*') return '*'
    return select
      .split(',')
      .map((name) =>
        name.trim() === '*' ? '*' : quoteIdent(this.#column(table, tableName, name.trim()).name),
      )
      .join(', ')
  }

  /** limit/offset intersected with the Range header (PostgREST's rangeIntersection). */
  #range(url: URL, lists: Record<string, string[]>): { offset: number; limit: number | null } {
    let lower = 0
    let upper = Number.POSITIVE_INFINITY
    const header = lists['range']?.[0]
    const match = header === undefined ? null : /^(?:items=)?(\d+)-(\d*)$/.exec(header.trim())
    if (match !== null) {
      lower = Number(match[1])
      upper = match[2] === '' ? Number.POSITIVE_INFINITY : Number(match[2])
      if (upper < lower) {
        throw new RestError(
          416,
          'PGRST103',
          'Requested range not satisfiable',
          'The lower boundary must be lower than or equal to the upper boundary in the Range header.',
        )
      }
    }
    const offsetParam = url.searchParams.get('offset')
    const limitParam = url.searchParams.get('limit')
    const offset = offsetParam === null ? 0 : Number(offsetParam)
    const limit = limitParam === null ? null : Number(limitParam)
    if (
      !Number.isInteger(offset) ||
      offset < 0 ||
      (limit !== null && (!Number.isInteger(limit) || limit < 0))
    ) {
      throw new RestError(
        416,
        'PGRST103',
        'Requested range not satisfiable',
        'Limit should be greater than or equal to zero.',
      )
    }
    const paramUpper = limit === null ? Number.POSITIVE_INFINITY : offset + limit - 1
    const from = Math.max(lower, offset)
    const to = Math.min(upper, paramUpper)
    return { offset: from, limit: to === Number.POSITIVE_INFINITY ? null : Math.max(0, to - from + 1) }
  }

  async #read(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    lists: Record<string, string[]>,
    auth: AuthResult,
    tableName: string,
    table: TableInfo,
    prefs: Map<string, string>,
  ): Promise<void> {
    const params: unknown[] = []
    const where = this.#where(url, table, tableName, params)
    const order = this.#orderBy(url, table, tableName)
    const columns = this.#selectList(url, table, tableName)
    const { offset, limit } = this.#range(url, lists)
    const exact = prefs.get('count') === 'exact'
    const source = `${quoteIdent(this.#schema)}.${quoteIdent(tableName)}`
    const page = `select ${columns} from ${source}${where}${order}${limit === null ? '' : ` limit ${limit}`} offset ${offset}`
    const { body, count, total } = await this.#begin(req, url, lists, auth, async (tx) => {
      const [row] = await tx.unsafe<{ body: string; count: number }[]>(
        `select coalesce(json_agg(_postgrest_t), '[]')::text as body, count(*)::int as count from (${page}) _postgrest_t`,
        params as postgres.ParameterOrJSON<never>[],
      )
      let total: number | null = null
      if (exact) {
        const [counted] = await tx.unsafe<{ total: number }[]>(
          `select count(*)::int as total from ${source}${where}`,
          params as postgres.ParameterOrJSON<never>[],
        )
        total = counted!.total
      }
      return { body: row!.body, count: row!.count, total }
    })
    // PostgREST's rangeStatusHeader.
    const upper = offset + count - 1
    if (total !== null && offset > total) {
      throw new RestError(
        416,
        'PGRST103',
        'Requested range not satisfiable',
        `An offset of ${offset} was requested, but there are only ${total} rows.`,
      )
    }
    const rangeText = total !== 0 && offset <= upper ? `${offset}-${upper}` : '*'
    const headers: Record<string, string> = { 'content-range': `${rangeText}/${total ?? '*'}` }
    if (exact) headers['preference-applied'] = 'count=exact'
    const status = total !== null && 1 + upper - offset < total ? 206 : 200
    if (req.method === 'HEAD') {
      res.writeHead(status, { 'content-type': JSON_TYPE, ...headers })
      res.end()
      return
    }
    sendText(res, status, body, headers)
  }

  async #insert(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    lists: Record<string, string[]>,
    auth: AuthResult,
    tableName: string,
    table: TableInfo,
    prefs: Map<string, string>,
  ): Promise<void> {
    const text = (await readBody(req)).toString('utf8')
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw new RestError(400, 'PGRST102', 'Empty or invalid json')
    }
    const rows = Array.isArray(parsed) ? parsed : [parsed]
    if (!rows.every((row) => row !== null && typeof row === 'object' && !Array.isArray(row))) {
      throw new RestError(400, 'PGRST102', 'All object keys must match')
    }
    const names = Object.keys((rows[0] ?? {}) as object)
    const columns = names.map((name) => quoteIdent(this.#column(table, tableName, name).name)).join(', ')
    const source = `${quoteIdent(this.#schema)}.${quoteIdent(tableName)}`
    const representation = prefs.get('return') === 'representation'
    // PostgREST: `RETURNING 1` for return=minimal (still counts rows), the selected columns otherwise.
    const returning = ` returning ${representation ? this.#selectList(url, table, tableName) : '1'}`
    const statement =
      names.length === 0
        ? `insert into ${source} default values${returning}`
        : `insert into ${source} (${columns}) select ${columns} from json_populate_recordset(null::${source}, $1::text::json)${returning}`
    const body = await this.#begin(req, url, lists, auth, async (tx) => {
      const [row] = await tx.unsafe<{ body: string; count: number }[]>(
        `with _postgrest_i as (${statement}) select ${representation ? "coalesce(json_agg(_postgrest_i), '[]')::text" : "''"} as body, count(*)::int as count from _postgrest_i`,
        names.length === 0 ? [] : [JSON.stringify(rows)],
      )
      return row!.body
    })
    const applied: string[] = []
    const ret = prefs.get('return')
    if (ret === 'representation' || ret === 'minimal') applied.push(`return=${ret}`)
    const headers: Record<string, string> = { 'content-range': '*/*' }
    if (applied.length > 0) headers['preference-applied'] = applied.join(', ')
    if (representation) {
      sendText(res, 201, body, headers)
      return
    }
    res.writeHead(201, headers)
    res.end()
  }

  async #function(name: string): Promise<FunctionInfo> {
    const rows = await this.#sql<
      { args: string[] | null; types: string[] | null; returns_set: boolean; composite: boolean }[]
    >`
      select p.proargnames as args,
        array(select format_type(t, null) from unnest(p.proargtypes) as t) as types,
        p.proretset as returns_set,
        (select typtype = 'c' from pg_type where oid = p.prorettype) as composite
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = ${this.#schema} and p.proname = ${name}`
    const row = rows[0]
    if (row === undefined) {
      throw new RestError(
        404,
        'PGRST202',
        `Could not find the function ${this.#schema}.${name} without parameters in the schema cache`,
        `Searched for the function ${this.#schema}.${name} without parameters, but no matches were found in the schema cache.`,
      )
    }
    const types = row.types ?? []
    const args = types.map((type, i) => ({ name: row.args?.[i] ?? `$${i + 1}`, type }))
    return { args, returnsSet: row.returns_set, returnsComposite: row.composite }
  }

  async #rpc(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    lists: Record<string, string[]>,
    auth: AuthResult,
    name: string,
  ): Promise<void> {
    const fn = await this.#function(name)
    let input: Record<string, unknown> = {}
    if (req.method === 'POST') {
      const text = (await readBody(req)).toString('utf8')
      if (text.trim() !== '') {
        try {
          input = JSON.parse(text) as Record<string, unknown>
        } catch {
          throw new RestError(400, 'PGRST102', 'Empty or invalid json')
        }
      }
    } else {
      for (const [key, value] of url.searchParams) input[key] = value
    }
    const params: unknown[] = []
    const named: string[] = []
    for (const arg of fn.args) {
      if (!Object.hasOwn(input, arg.name)) continue
      const value = input[arg.name]
      params.push(typeof value === 'string' ? value : JSON.stringify(value))
      named.push(`${quoteIdent(arg.name)} := $${params.length}::text::${arg.type}`)
    }
    const call = `${quoteIdent(this.#schema)}.${quoteIdent(name)}(${named.join(', ')})`
    const query =
      fn.returnsSet || fn.returnsComposite
        ? `select ${fn.returnsSet ? "coalesce(json_agg(_postgrest_t), '[]')" : 'to_json(_postgrest_t)'}::text as body from ${call} _postgrest_t`
        : `select to_json(${call})::text as body`
    const body = await this.#begin(req, url, lists, auth, async (tx) => {
      const [row] = await tx.unsafe<{ body: string | null }[]>(
        query,
        params as postgres.ParameterOrJSON<never>[],
      )
      return row?.body ?? 'null'
    })
    sendText(res, 200, body, {})
  }

  /** Endpoints outside PostgREST's API, for proxy tests: echo (streamed hash), download, slow, status. */
  async #testEndpoint(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    lists: Record<string, string[]>,
    authorization: string | null,
  ): Promise<void> {
    const name = url.pathname.slice('/__standin/'.length)
    if (name === 'echo') {
      const hash = createHash('sha256')
      let length = 0
      for await (const chunk of req) {
        hash.update(chunk as Buffer)
        length += (chunk as Buffer).length
      }
      // The verdict of the auth step, so that a test can see what the gateway minted.
      let auth: { role: string; claims: Record<string, unknown> } | { error: string; message: string }
      try {
        const result = await this.#verifier.authenticate(authorization)
        auth = { role: result.role, claims: result.claims }
      } catch (err) {
        auth =
          err instanceof GatewayError
            ? { error: err.code, message: err.message }
            : { error: 'XX000', message: 'error' }
      }
      sendJson(res, 200, {
        method: req.method,
        url: req.url,
        headers: lists,
        bodyLength: length,
        bodySha256: hash.digest('hex'),
        auth,
      })
      return
    }
    if (name === 'download') {
      const bytes = Number(url.searchParams.get('bytes') ?? '0')
      const chunk = Buffer.alloc(64 * 1024, 'x')
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) })
      let left = bytes
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left)
        left -= piece.length
        if (!res.write(piece)) {
          await new Promise<void>((resolve) => {
            const done = (): void => {
              res.off('drain', done)
              res.off('close', done)
              resolve()
            }
            res.on('drain', done)
            res.on('close', done)
          })
          if (res.destroyed) return
        }
      }
      res.end()
      return
    }
    if (name === 'slow') {
      const ms = Number(url.searchParams.get('ms') ?? '1000')
      await new Promise((resolve) => setTimeout(resolve, ms))
      if (!res.destroyed) sendJson(res, 200, { sleptMs: ms })
      return
    }
    if (name === 'status') {
      // /__standin/status?code=419&header=set-cookie:a=1&header=set-cookie:b=2
      const status = Number(url.searchParams.get('code') ?? '200')
      const headers: [string, string][] = []
      for (const header of url.searchParams.getAll('header')) {
        const colon = header.indexOf(':')
        if (colon > 0) headers.push([header.slice(0, colon), header.slice(colon + 1)])
      }
      const body = JSON.stringify({ status })
      res.writeHead(status, [
        ['content-type', JSON_TYPE],
        ['content-length', String(Buffer.byteLength(body))],
        ...headers,
      ])
      res.end(body)
      return
    }
    sendJson(res, 404, { error: 'unknown stand-in endpoint' })
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': String(Buffer.byteLength(body)),
    ...headers,
  })
  res.end(body)
}

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  sendText(res, status, JSON.stringify(value), headers)
}

/**
 * Starts the stand-in on 127.0.0.1 (port 0 by default). Its auth answers are PostgREST's, byte for
 * byte (the gateway's error table); its REST subset: `GET /<table>` with `select`, filters
 * (`eq neq gt gte lt lte like ilike is in`, `not.`), `order`, `limit`, `offset`, `Range`,
 * `Prefer: count=exact`; `POST /<table>` (object or array, `Prefer: return=representation|minimal`);
 * `POST|GET /rpc/<fn>`. Test endpoints: `/__standin/echo`, `/__standin/download?bytes=N`,
 * `/__standin/slow?ms=N`, `/__standin/status?code=N&header=name:value`.
 */
export async function startPostgrestStandIn(options: StandInOptions): Promise<StandIn> {
  const server = new StandInServer(options)
  const host = options.host ?? '127.0.0.1'
  const address = await server.listen(options.port ?? 0, host)
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    requests: server.requests,
    get inFlight() {
      return server.inFlight
    },
    get aborted() {
      return server.aborted
    },
    close: () => server.close(),
  }
}
