// Forward stage: streams the request to PostgREST and the answer back, over one undici Pool.
import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Writable } from 'node:stream'
import type { Counter } from 'prom-client'
import { type Dispatcher, Pool } from 'undici'
import type { Metrics, UpstreamErrorKind } from '../observability/metrics.js'
import { forwardRequestHeaders, forwardResponseHeaders } from './headers.js'
import { classifyUpstreamError, isClientAbort, translateUpstreamError } from './upstream-errors.js'

export interface ForwarderOptions {
  /** PostgREST base URL, e.g. `http://127.0.0.1:3000`; a path prefix (`http://h/api`) is kept. */
  readonly url: string
  /** Upstream response headers must arrive within this (else 504). */
  readonly timeoutMs: number
  /** Longest gap between two upstream body chunks (the response is cut after it). */
  readonly bodyTimeoutMs: number
  readonly connectTimeoutMs: number
  /** Size of the undici Pool: keep-alive connections to the upstream. */
  readonly connections: number
  /** Append to an inbound `X-Forwarded-For` (and keep inbound `X-Forwarded-Proto/Host`) instead of replacing them. */
  readonly trustForwardedHeaders: boolean
  readonly metrics?: Metrics
}

export interface ForwardOutcome {
  /** The status the client received; 499 when the client left before the upstream answered. */
  readonly status: number
  /** Time until the upstream's response headers arrived (or until the exchange ended without them). */
  readonly upstreamMs: number
  /** The client disconnected before the response was complete; the upstream request was aborted. */
  readonly clientAborted: boolean
}

export interface Forwarder {
  /**
   * Streams `req` to the upstream and the answer back to `res`. `authorization` replaces the
   * inbound `Authorization` header (null = send none); `requestId` is sent upstream and returned to
   * the client as `X-Request-Id` (the caller must not set that header on `res` itself).
   *
   * Resolves when the response is complete, or when the client went away (then the upstream
   * request is aborted and `clientAborted` is true). Rejects with a {@link GatewayError} when the
   * upstream fails: if nothing was sent yet (`res.headersSent` false) the caller answers with it;
   * if the response had already started, the client connection has been cut (a truncated response
   * must not look complete) and the rejection is only for the log.
   */
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
  ): Promise<ForwardOutcome>
  /** One cheap probe for readiness: can a TCP connection to the upstream be opened? */
  isReachable(): Promise<boolean>
  /** Closes the pool once in-flight requests have finished. */
  close(): Promise<void>
}

/** nginx's "client closed request": logged when the client left before any response was sent. */
const CLIENT_CLOSED = 499

/**
 * One request in flight: undici's `opaque` (read by the response factory, no closure) and its
 * abort signal (undici accepts an EventEmitter with `aborted` and an `abort` event, which is
 * cheaper than an AbortController). Every field is set in the constructor: one object shape.
 */
class Exchange extends EventEmitter {
  aborted: boolean
  readonly res: ServerResponse
  readonly requestId: string
  readonly startedAt: number
  upstreamMs: number
  status: number

  constructor(res: ServerResponse, requestId: string, startedAt: number) {
    super()
    this.aborted = false
    this.res = res
    this.requestId = requestId
    this.startedAt = startedAt
    this.upstreamMs = -1
    this.status = 0
  }

  abort(): void {
    if (this.aborted) return
    this.aborted = true
    this.emit('abort')
  }
}

/**
 * undici's stream factory: the upstream's status and headers go to the client at once, and the
 * client's own response is the writable, so undici pauses the upstream socket whenever `res` needs
 * draining (back-pressure end to end). Status codes pass exactly (206, 332, 419, ...); Node sends its
 * own reason phrase, `unknown` for codes it has no name for (clients ignore the phrase, RFC 9112 4).
 */
function writeResponseHead(data: Dispatcher.StreamFactoryData<Exchange>): Writable {
  const exchange = data.opaque
  exchange.upstreamMs = performance.now() - exchange.startedAt
  exchange.status = data.statusCode
  const res = exchange.res
  // `responseHeaders: 'raw'`: a flat [name, value, ...] list in the upstream's case and order.
  res.writeHead(
    data.statusCode,
    forwardResponseHeaders(data.headers as unknown as string[], exchange.requestId),
  )
  return res
}

/** Origin for the Pool, and the path prefix to put before each request path. */
function parseUpstream(url: string): { origin: string; prefix: string; host: string; port: number } {
  const parsed = new URL(url)
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`upstream url must be http or https, got ${parsed.protocol}`)
  }
  const prefix = parsed.pathname.endsWith('/') ? parsed.pathname.slice(0, -1) : parsed.pathname
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname
  const port = parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port)
  return { origin: parsed.origin, prefix, host, port }
}

/** The request target as a path: origin-form as it is; absolute-form (RFC 9112 3.2.2) reduced to its path. */
function targetPath(url: string | undefined): string {
  if (url === undefined || url === '') return '/'
  if (url.charCodeAt(0) === 47 /* '/' */) return url
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return '/'
  }
}

class UndiciForwarder implements Forwarder {
  readonly #pool: Pool
  readonly #prefix: string
  readonly #host: string
  readonly #port: number
  readonly #connectTimeoutMs: number
  readonly #trust: boolean
  readonly #metrics: Metrics | null
  readonly #errors: { readonly [K in UpstreamErrorKind]: Counter.Internal } | null

  constructor(options: ForwarderOptions) {
    const { origin, prefix, host, port } = parseUpstream(options.url)
    this.#prefix = prefix
    this.#host = host
    this.#port = port
    this.#connectTimeoutMs = options.connectTimeoutMs
    this.#trust = options.trustForwardedHeaders
    this.#pool = new Pool(origin, {
      connections: options.connections,
      // One request per connection at a time: a request is never queued behind another on a socket,
      // and undici re-dispatches only requests it has not started writing (see README "Retries").
      pipelining: 1,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      connectTimeout: options.connectTimeoutMs,
    })
    const metrics = options.metrics ?? null
    this.#metrics = metrics
    this.#errors =
      metrics === null
        ? null
        : {
            connect: metrics.upstreamErrors.labels('connect'),
            timeout: metrics.upstreamErrors.labels('timeout'),
            reset: metrics.upstreamErrors.labels('reset'),
            other: metrics.upstreamErrors.labels('other'),
          }
  }

  async forward(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
  ): Promise<ForwardOutcome> {
    const exchange = new Exchange(res, requestId, performance.now())
    const headers: string[] = []
    const hasBody = forwardRequestHeaders(req, headers, authorization, requestId, this.#trust)
    // A client that leaves before its response is complete aborts the upstream request: undici
    // destroys the upstream socket, so PostgREST sees the connection cut. Once undici streams into
    // `res` it watches `res` itself; this covers the wait for the upstream's headers.
    res.once('close', () => {
      if (!res.writableFinished) exchange.abort()
    })
    try {
      await this.#pool.stream<Exchange>(
        {
          path: this.#prefix + targetPath(req.url),
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers,
          // The request itself streams as the body: never buffered, Content-Length kept, and
          // undici pauses reading it while the upstream socket needs draining.
          body: hasBody ? req : null,
          opaque: exchange,
          signal: exchange,
          responseHeaders: 'raw',
        },
        writeResponseHead,
      )
    } catch (err) {
      return this.#failed(err, exchange)
    }
    this.#metrics?.upstreamDuration.observe(exchange.upstreamMs / 1000)
    return { status: exchange.status, upstreamMs: exchange.upstreamMs, clientAborted: false }
  }

  #failed(err: unknown, exchange: Exchange): ForwardOutcome {
    const res = exchange.res
    const started = exchange.upstreamMs >= 0
    if (started) this.#metrics?.upstreamDuration.observe(exchange.upstreamMs / 1000)
    const upstreamMs = started ? exchange.upstreamMs : performance.now() - exchange.startedAt
    // Once undici streams into `res`, an upstream failure destroys `res` with the upstream's error
    // and undici reports only "premature close": the error `res` was destroyed with is the cause.
    const cause: unknown = res.errored ?? err
    if (isClientAbort(cause)) {
      return { status: res.headersSent ? res.statusCode : CLIENT_CLOSED, upstreamMs, clientAborted: true }
    }
    const kind = classifyUpstreamError(cause)
    if (kind !== 'closed') this.#errors?.[kind].inc()
    // undici destroys `res` when the upstream fails mid-response; make sure a started response is
    // never left open, so the client sees a cut connection rather than a hang.
    if (res.headersSent && !res.destroyed) res.destroy()
    throw translateUpstreamError(cause, kind)
  }

  isReachable(): Promise<boolean> {
    // A bare TCP connect: PostgREST's main port answers nothing cheaper, and a probe request would
    // reach its request log and the database pool. Whether PostgREST's schema cache is loaded is
    // its own /ready endpoint's business.
    return new Promise((resolve) => {
      const socket = connect({ host: this.#host, port: this.#port, timeout: this.#connectTimeoutMs })
      const done = (ok: boolean): void => {
        socket.destroy()
        resolve(ok)
      }
      socket.once('connect', () => done(true))
      socket.once('timeout', () => done(false))
      socket.once('error', () => done(false))
    })
  }

  close(): Promise<void> {
    return this.#pool.close()
  }
}

/** Builds the forwarder; the upstream URL is parsed and the Pool created once, here. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  return new UndiciForwarder(options)
}
