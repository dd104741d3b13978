// The one place that orders the stages: bearer -> verify -> freshen -> hook -> role -> mint -> forward.
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { extractBearer } from './auth/bearer.js'
import type { Claims, VerifiedToken, Verifier } from './auth/types.js'
import { GatewayError, sendError } from './errors/index.js'
import type { Minter } from './mint/minter.js'
import { type MethodLabel, type Metrics, methodLabel, type StatusClass } from './observability/metrics.js'
import type { CurrentUser, RoleMapper } from './role/map-role.js'

/** The claims stage as the pipeline sees it (implemented in claims/). */
export interface ClaimsStage {
  freshen(token: VerifiedToken): CurrentUser | Promise<CurrentUser>
}

/** The hook stage as the pipeline sees it (implemented in hook/): its output replaces the claims. */
export interface HookStage {
  run(token: VerifiedToken, user: CurrentUser | null): Readonly<Claims> | Promise<Readonly<Claims>>
}

/** The forward stage as the pipeline sees it (implemented in proxy/). */
export interface ForwardStage {
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
  ): Promise<{ readonly status: number; readonly upstreamMs: number }>
}

export interface PipelineOptions {
  readonly anonymous: 'allow' | 'deny'
  /** The role a PostgREST `db-anon-role` stands for: API keys with it go through as anonymous. */
  readonly anonRole: string
  /** False when neither a secret nor a JWKS URL is configured: tokens get PGRST300. */
  readonly hasKeys: boolean
  readonly verifier: Verifier
  readonly claims: ClaimsStage | null
  readonly hook: HookStage | null
  readonly roles: RoleMapper
  readonly minter: Minter
  readonly forwarder: ForwardStage
  readonly logger: Logger
  readonly metrics: Metrics
}

export interface Pipeline {
  handle(req: IncomingMessage, res: ServerResponse): void
  /** Requests being served now (graceful shutdown waits for 0). */
  readonly inFlight: number
}

const STATUS_CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx']
const MAX_REQUEST_ID_LENGTH = 200
// Visible ASCII only: the id is echoed in a response header and written to logs.
const REQUEST_ID = /^[\x21-\x7e]+$/

function requestIdOf(req: IncomingMessage): string {
  const inbound = req.headers['x-request-id']
  if (typeof inbound === 'string' && inbound.length <= MAX_REQUEST_ID_LENGTH && REQUEST_ID.test(inbound)) {
    return inbound
  }
  return randomUUID()
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return ''
  // Query strings carry filter values (emails, ids): keep them out of the access log.
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** One object per request, every field set in the constructor so its shape stays stable. */
class RequestContext {
  readonly start = performance.now()
  readonly requestId: string
  readonly method: MethodLabel
  role: string | null = null
  status = 0
  upstreamMs = -1
  error: GatewayError | null = null

  constructor(req: IncomingMessage) {
    this.requestId = requestIdOf(req)
    this.method = methodLabel(req.method)
  }
}

function isPreflight(req: IncomingMessage): boolean {
  return (
    req.method === 'OPTIONS' &&
    req.headers.origin !== undefined &&
    req.headers['access-control-request-method'] !== undefined
  )
}

export function createPipeline(options: PipelineOptions): Pipeline {
  const { verifier, claims, hook, roles, minter, forwarder, logger, metrics } = options
  const denyAnonymous = options.anonymous === 'deny'
  const anonRole = options.anonRole
  const hasKeys = options.hasKeys

  // Bind every label child once: no label lookups per request.
  const requestCounters = new Map<string, ReturnType<typeof metrics.requests.labels>>()
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const) {
    for (const c of STATUS_CLASSES) requestCounters.set(m + c, metrics.requests.labels(m, c))
  }
  const durations = new Map<string, ReturnType<typeof metrics.requestDuration.labels>>()
  for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const) {
    durations.set(m, metrics.requestDuration.labels(m))
  }
  const inFlightGauge = metrics.inFlight
  let inFlight = 0

  /** Decides what reaches PostgREST: the Authorization value to send, or null for anonymous. */
  async function authorize(req: IncomingMessage, ctx: RequestContext): Promise<string | null> {
    if (isPreflight(req)) return null // PostgREST answers CORS preflights before any auth
    const token = extractBearer(req.headers.authorization)
    if (token === null) {
      if (denyAnonymous) throw new GatewayError('AnonymousDisabled')
      return null
    }
    if (!hasKeys) throw new GatewayError('JwtSecretMissing')
    let verified = verifier.verify(token)
    if (verified instanceof Promise) verified = await verified

    if (verified.sub === null) {
      // An API key (Supabase anon / service_role): no user to look up, nothing to map.
      const role = roles.apiKeyRole(verified.claims)
      if (role === anonRole && !roles.isAllowed(role)) {
        if (denyAnonymous) throw new GatewayError('AnonymousDisabled')
        ctx.role = anonRole
        return null
      }
      if (role === null || !roles.isAllowed(role)) throw new GatewayError('RoleNotAllowed')
      ctx.role = role
      return minter.authorization(verified, null, role, null)
    }

    let user: CurrentUser | null = null
    if (claims !== null) {
      const fresh = claims.freshen(verified)
      user = fresh instanceof Promise ? await fresh : fresh
    }
    let hookClaims: Readonly<Claims> | null = null
    if (hook !== null) {
      const out = hook.run(verified, user)
      hookClaims = out instanceof Promise ? await out : out
    }
    const role = roles.mapRole(hookClaims ?? verified.claims, hookClaims === null ? user : null)
    ctx.role = role
    return minter.authorization(verified, user, role, hookClaims)
  }

  function finish(ctx: RequestContext, res: ServerResponse): void {
    inFlight--
    inFlightGauge.dec()
    const status = ctx.status !== 0 ? ctx.status : res.statusCode
    const seconds = (performance.now() - ctx.start) / 1000
    const cls = status >= 100 && status < 600 ? STATUS_CLASSES[Math.floor(status / 100) - 1] : '5xx'
    requestCounters.get(ctx.method + cls)?.inc()
    durations.get(ctx.method)?.observe(seconds)
  }

  async function run(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    try {
      const authorization = await authorize(req, ctx)
      const outcome = await forwarder.forward(req, res, authorization, ctx.requestId)
      ctx.status = outcome.status
      ctx.upstreamMs = outcome.upstreamMs
    } catch (err) {
      const failure =
        err instanceof GatewayError
          ? err
          : new GatewayError('Internal', { cause: err, reason: 'unexpected error in the pipeline' })
      ctx.error = failure
      ctx.status = failure.status
      sendError(res, failure, { 'x-request-id': ctx.requestId })
      // Drain an unread request body so the connection can be reused (or is closed by Node).
      if (!req.complete) req.resume()
    } finally {
      finish(ctx, res)
      log(req, res, ctx)
    }
  }

  function log(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const err = ctx.error
    const line = {
      reqId: ctx.requestId,
      method: req.method,
      path: pathOf(req.url),
      status: ctx.status !== 0 ? ctx.status : res.statusCode,
      durationMs: Math.round((performance.now() - ctx.start) * 1000) / 1000,
      upstreamMs: ctx.upstreamMs < 0 ? null : Math.round(ctx.upstreamMs * 1000) / 1000,
      role: ctx.role,
      code: err === null ? null : err.code,
    }
    if (err !== null && err.status >= 500) {
      logger.error({ ...line, err: err.cause ?? err, reason: err.reason }, 'request failed')
    } else {
      logger.info(line, 'request')
    }
  }

  return {
    get inFlight() {
      return inFlight
    },
    handle(req, res) {
      inFlight++
      inFlightGauge.inc()
      void run(req, res, new RequestContext(req))
    },
  }
}
