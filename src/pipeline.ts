// The one place that orders the stages: bearer -> verify -> freshen -> hook -> role -> mint -> forward.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
// The global `performance` is a lazy accessor on globalThis, read through a call on every use.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import { extractBearer } from './auth/bearer.js'
import type { Claims, VerifiedToken, Verifier } from './auth/types.js'
import { GatewayError, sendError } from './errors/index.js'
import type { Minter } from './mint/minter.js'
import type { CounterChild, HistogramChild } from './observability/fast-metrics.js'
import { type AccessLog, createAccessLog } from './observability/logger.js'
import { METHOD_LABELS, type Metrics, methodLabel, type StatusClass } from './observability/metrics.js'
import { createRequestIds, isAcceptableRequestId } from './request-id.js'
import type { CurrentUser, RoleMapper } from './role/map-role.js'

/** The claims stage as the pipeline sees it (implemented in claims/). */
export interface ClaimsStage {
  freshen(token: VerifiedToken): CurrentUser | Promise<CurrentUser>
}

/** The hook stage as the pipeline sees it (implemented in hook/): its output replaces the claims. */
export interface HookStage {
  run(token: VerifiedToken, user: CurrentUser | null): Readonly<Claims> | Promise<Readonly<Claims>>
}

/** What the forward stage reports at the end of an exchange (implemented in proxy/). */
export interface ForwardResult {
  readonly status: number
  readonly upstreamMs: number
}

/**
 * The forward stage as the pipeline sees it (implemented in proxy/): `done` is called exactly once,
 * with the `opaque` value it was given.
 */
export interface ForwardStage {
  forward<T>(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
    opaque: T,
    done: (opaque: T, failure: GatewayError | null, outcome: ForwardResult) => void,
  ): void
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

/** What the authorization decision reads from a request: its method and headers, nothing else. */
export interface RequestHead {
  readonly method?: string | undefined
  readonly headers: IncomingHttpHeaders
}

/** Where the decision records the role it chose (for the access log). */
export interface DecisionContext {
  role: string | null
}

export interface Pipeline {
  handle(req: IncomingMessage, res: ServerResponse): void
  /**
   * The per-request decision without HTTP: bearer -> verify -> freshen -> hook -> role -> mint.
   * Returns the `Authorization` value to send upstream, or null for an anonymous request;
   * synchronously when every stage answers from its cache, a Promise otherwise. Throws (or
   * rejects with) the GatewayError the client gets. `handle` runs exactly this for each request.
   */
  authorize(req: RequestHead, ctx: DecisionContext): string | null | Promise<string | null>
  /** Requests being served now (graceful shutdown waits for 0). */
  readonly inFlight: number
}

const STATUS_CLASSES: readonly StatusClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx']
const nextRequestId = createRequestIds()

function requestIdOf(req: IncomingMessage): string {
  const inbound = req.headers['x-request-id']
  return typeof inbound === 'string' && isAcceptableRequestId(inbound) ? inbound : nextRequestId()
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return ''
  // Query strings carry filter values (emails, ids): keep them out of the access log.
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** The request metrics of one method label, bound once. */
interface MethodMetrics {
  /** By status class: 1xx..5xx. */
  readonly counters: readonly CounterChild[]
  readonly duration: HistogramChild
}

/** One object per request, every field set in the constructor so its shape stays stable. */
class RequestContext implements DecisionContext {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly start = performance.now()
  readonly requestId: string
  readonly metrics: MethodMetrics
  role: string | null = null
  status = 0
  upstreamMs = -1
  error: GatewayError | null = null

  constructor(req: IncomingMessage, res: ServerResponse, metrics: MethodMetrics) {
    this.req = req
    this.res = res
    this.requestId = requestIdOf(req)
    this.metrics = metrics
  }
}

/**
 * Without any key, PostgREST v13+ answers every Bearer token with PGRST300 before it looks at the
 * token (`decode JwtNoJwks`), so an empty one too; anything else is anonymous as usual.
 */
function bearerWithoutKeys(req: RequestHead): null {
  try {
    if (extractBearer(req.headers.authorization) === null) return null
  } catch {
    // An empty Bearer token: still a token for this purpose.
  }
  throw new GatewayError('JwtSecretMissing')
}

function isPreflight(req: RequestHead): boolean {
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
  const requestMetrics = new Map<string, MethodMetrics>()
  for (const m of METHOD_LABELS) {
    requestMetrics.set(m, {
      counters: STATUS_CLASSES.map((c) => metrics.requests.labels(m, c)),
      duration: metrics.requestDuration.labels(m),
    })
  }
  const getMetrics = requestMetrics.get('GET')!
  /** The request metrics of a method: GET (most requests) without a lookup. */
  const metricsOf = (method: string | undefined): MethodMetrics =>
    method === 'GET' ? getMetrics : requestMetrics.get(methodLabel(method))!
  // gateway_requests_in_flight is read from this count at scrape time (gateway.ts), not updated here.
  let inFlight = 0
  const accessLog: AccessLog = createAccessLog(logger)

  /** Decides what reaches PostgREST: the Authorization value to send, or null for anonymous. */
  function authorize(req: RequestHead, ctx: DecisionContext): string | null | Promise<string | null> {
    if (isPreflight(req)) return null // PostgREST answers CORS preflights before any auth
    const token = hasKeys ? extractBearer(req.headers.authorization) : bearerWithoutKeys(req)
    if (token === null) {
      if (denyAnonymous) throw new GatewayError('AnonymousDisabled')
      return null
    }
    // Each stage answers synchronously from its cache; only a miss continues through a Promise,
    // so a steady client costs no microtask and no async frame.
    const verified = verifier.verify(token)
    if (verified instanceof Promise) return verified.then((v) => afterVerify(v, ctx))
    return afterVerify(verified, ctx)
  }

  function afterVerify(
    verified: VerifiedToken,
    ctx: DecisionContext,
  ): string | null | Promise<string | null> {
    if (verified.sub === null) {
      // An API key (Supabase anon / service_role): no user to look up, nothing to map.
      const role = verified.role
      if (role === anonRole && !roles.isAllowed(role)) {
        if (denyAnonymous) throw new GatewayError('AnonymousDisabled')
        ctx.role = anonRole
        return null
      }
      if (role === null || !roles.isAllowed(role)) throw new GatewayError('RoleNotAllowed')
      ctx.role = role
      return minter.authorization(verified, null, role, null)
    }
    if (claims === null) return afterFreshen(verified, null, ctx)
    const fresh = claims.freshen(verified)
    if (fresh instanceof Promise) return fresh.then((user) => afterFreshen(verified, user, ctx))
    return afterFreshen(verified, fresh, ctx)
  }

  function afterFreshen(
    verified: VerifiedToken,
    user: CurrentUser | null,
    ctx: DecisionContext,
  ): string | Promise<string> {
    if (hook === null) return decideRole(verified, user, null, ctx)
    const out = hook.run(verified, user)
    if (out instanceof Promise) return out.then((claims) => decideRole(verified, user, claims, ctx))
    return decideRole(verified, user, out, ctx)
  }

  function decideRole(
    verified: VerifiedToken,
    user: CurrentUser | null,
    hookClaims: Readonly<Claims> | null,
    ctx: DecisionContext,
  ): string {
    // Same token, same user record, same hook result: the same decision as last time.
    const previous = minter.reuse(verified, user, hookClaims)
    if (previous !== undefined) {
      ctx.role = previous.role
      return previous.authorization
    }
    const role = roles.mapRole(hookClaims ?? verified.claims, hookClaims === null ? user : null)
    ctx.role = role
    return minter.authorization(verified, user, role, hookClaims)
  }

  /**
   * The forward stage's report: `ctx` is the opaque value given to it, so no closure is made per
   * request.
   */
  function forwarded(ctx: RequestContext, failure: GatewayError | null, outcome: ForwardResult): void {
    if (failure !== null) {
      failed(ctx, failure)
      return
    }
    ctx.status = outcome.status
    ctx.upstreamMs = outcome.upstreamMs
    done(ctx)
  }

  function failed(ctx: RequestContext, err: unknown): void {
    const { req, res } = ctx
    try {
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
      done(ctx)
    }
  }

  /** Counts the request, observes its duration and writes its access line. */
  function done(ctx: RequestContext): void {
    inFlight--
    const { req, res } = ctx
    const status = ctx.status !== 0 ? ctx.status : res.statusCode
    const ms = performance.now() - ctx.start
    const byMethod = ctx.metrics
    // Index into STATUS_CLASSES: 1xx..5xx, anything else counts as 5xx.
    byMethod.counters[status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 4]!.inc()
    byMethod.duration.observe(ms / 1000)
    const err = ctx.error
    const line = {
      reqId: ctx.requestId,
      method: req.method,
      path: pathOf(req.url),
      status,
      durationMs: Math.round(ms * 1000) / 1000,
      upstreamMs: ctx.upstreamMs < 0 ? null : Math.round(ctx.upstreamMs * 1000) / 1000,
      role: ctx.role,
      code: err === null ? null : err.code,
    }
    if (err !== null && err.status >= 500) {
      logger.error({ ...line, err: err.cause ?? err, reason: err.reason }, 'request failed')
    } else {
      accessLog(line)
    }
  }

  return {
    get inFlight() {
      return inFlight
    },
    authorize,
    handle(req, res) {
      inFlight++
      const ctx = new RequestContext(req, res, metricsOf(req.method))
      let authorization: string | null | Promise<string | null>
      try {
        authorization = authorize(req, ctx)
      } catch (err) {
        failed(ctx, err)
        return
      }
      if (authorization instanceof Promise) {
        authorization.then(
          (value) => forwarder.forward(req, res, value, ctx.requestId, ctx, forwarded),
          (err: unknown) => failed(ctx, err),
        )
      } else {
        forwarder.forward(req, res, authorization, ctx.requestId, ctx, forwarded)
      }
    },
  }
}
