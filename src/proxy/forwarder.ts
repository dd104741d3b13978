// Forward stage: streams the request to PostgREST and the answer back, over one undici Pool.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Counter } from 'prom-client'
import { type Dispatcher, errors, Pool } from 'undici'
import type { GatewayError } from '../errors/index.js'
import type { Metrics, UpstreamErrorKind } from '../observability/metrics.js'
import { forwardRequestHeaders, forwardResponseHeaders } from './headers.js'
import { SpentBuffers } from './spent-buffers.js'
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

/**
 * Receives the end of one exchange, exactly once, with the `opaque` value given to `forward` (as
 * undici's `stream()` hands its `opaque` back: the caller needs no closure per request). `failure`
 * is null when the response was completed or the client went away (`outcome.clientAborted`).
 * Otherwise it is the {@link GatewayError} for an upstream failure: if nothing was sent yet
 * (`res.headersSent` false) the caller answers with it; if the response had already started, the
 * client connection has been cut (a truncated response must not look complete) and the failure is
 * only for the log. `outcome` is read during the call only.
 */
export type ForwardDone<T> = (opaque: T, failure: GatewayError | null, outcome: ForwardOutcome) => void

export interface Forwarder {
  /**
   * Streams `req` to the upstream and the answer back to `res`, then calls `done(opaque, ...)`.
   * `authorization` replaces the inbound `Authorization` header (null = send none); `requestId` is
   * sent upstream and returned to the client as `X-Request-Id` (the caller must not set that header
   * on `res`). A client that leaves before its response is complete aborts the upstream request.
   */
  forward<T>(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
    opaque: T,
    done: ForwardDone<T>,
  ): void
  /** One cheap probe for readiness: can a TCP connection to the upstream be opened? */
  isReachable(): Promise<boolean>
  /** Closes the pool once in-flight requests have finished. */
  close(): Promise<void>
}

/** nginx's "client closed request": logged when the client left before any response was sent. */
const CLIENT_CLOSED = 499

/**
 * The largest last body chunk written as a latin1 string (one byte per character, so every byte
 * goes out unchanged). Node appends a string to the response head that is still pending and sends
 * both in one write; a Buffer goes into a second entry of a corked `writev`. Measured on a bare
 * `node:http` server answering a 55-byte body: 1.1-1.2 us less CPU per request on Node 24 and the
 * same on Node 20; at 1 KB the string cost Node 20 1 us more, at 4 KB it cost Node 24 0.7 us more.
 */
const SMALL_BODY_BYTES = 512

/**
 * One request in flight, and undici's handler for it (`Pool.dispatch`, the layer under
 * `Pool.stream()`): `stream()` adds an AsyncResource, a Promise, an abort-signal emitter and
 * `stream.finished()` listeners to every request (a bare proxy on `dispatch` measured about 2 us of
 * CPU per request below the same proxy on `stream()`, 33 us).
 * The upstream's status and headers go to the client at once and `res` takes the body chunks: when
 * `res` needs draining, `onData` returns false and undici pauses the upstream socket until `drain`
 * (back-pressure end to end). It is also the {@link ForwardOutcome} handed to `done`. Every field is
 * set in the constructor: one object shape.
 */
class Exchange<T> implements ForwardOutcome {
  readonly res: ServerResponse
  readonly requestId: string
  readonly startedAt: number
  readonly #forwarder: UndiciForwarder
  readonly #opaque: T
  #done: ForwardDone<T> | null
  /** undici's abort for this request, once it is dispatched to a connection. */
  #abort: ((err: Error) => void) | null
  /** undici's resume, registered on `res`'s `drain` the first time `res` needs draining. */
  #resume: (() => void) | null
  #draining: boolean
  /** Body bytes still to come by the upstream's Content-Length; -1 when it sent none. */
  #remaining: number
  /** `res.end()` was called (with the last body chunk). */
  #ended: boolean
  /** The client left before the response was complete. */
  aborted: boolean
  clientAborted: boolean
  /** Time to the upstream's response headers (-1 until they arrive). */
  upstreamMs: number
  status: number
  /** Runs when `res` closes: before it finished, the client left, so the upstream request goes too. */
  readonly onClose: () => void

  constructor(
    res: ServerResponse,
    requestId: string,
    forwarder: UndiciForwarder,
    opaque: T,
    done: ForwardDone<T>,
  ) {
    this.res = res
    this.requestId = requestId
    this.startedAt = performance.now()
    this.#forwarder = forwarder
    this.#opaque = opaque
    this.#done = done
    this.#abort = null
    this.#resume = null
    this.#draining = false
    this.#remaining = -1
    this.#ended = false
    this.aborted = false
    this.clientAborted = false
    this.upstreamMs = -1
    this.status = 0
    this.onClose = () => {
      if (this.res.writableFinished || this.#done === null) return
      this.aborted = true
      this.#abort?.(new errors.RequestAbortedError())
    }
  }

  onConnect(abort: (err: Error) => void): void {
    // The client may have left while the request waited for a free upstream connection.
    if (this.aborted) abort(new errors.RequestAbortedError())
    else this.#abort = abort
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx informational answers (100 Continue, 103 Early Hints) are not forwarded.
    if (statusCode < 200) return true
    this.upstreamMs = performance.now() - this.startedAt
    this.status = statusCode
    this.#resume = resume
    const res = this.res
    // Status codes pass exactly (206, 332, 419, ...); Node sends its own reason phrase, `unknown`
    // for codes it has no name for (clients ignore the phrase, RFC 9112 4).
    const headers: string[] = []
    this.#remaining = forwardResponseHeaders(rawHeaders, this.requestId, headers)
    res.writeHead(statusCode, headers)
    return !res.writableNeedDrain || this.#needDrain()
  }

  onData(chunk: Buffer): boolean {
    this.#forwarder.spent.passed(chunk.length)
    if (this.#remaining >= 0) {
      this.#remaining -= chunk.length
      if (this.#remaining === 0) {
        // The last chunk by Content-Length: one `end(chunk)` instead of `write` and `end`, which
        // spares Node's deferred uncork (a tick) and a second pass through the writable; a small
        // one as a string, which goes out in one write with the head (see SMALL_BODY_BYTES).
        this.#ended = true
        if (chunk.length <= SMALL_BODY_BYTES) this.res.end(chunk.toString('latin1'), 'latin1')
        else this.res.end(chunk)
        return true
      }
    }
    return this.res.write(chunk) || this.#needDrain()
  }

  /**
   * A request body chunk was written to the upstream. undici 7 hands over the chunk itself; its
   * types name a byte count, which is taken as well.
   */
  onBodySent(chunk: Buffer | string | number): void {
    this.#forwarder.spent.passed(typeof chunk === 'number' ? chunk : chunk.length)
  }

  /** Pauses the upstream until `res` drains: undici's resume, registered once per exchange. */
  #needDrain(): false {
    if (!this.#draining) {
      this.#draining = true
      this.res.on('drain', this.#resume!)
    }
    return false
  }

  onComplete(): void {
    if (!this.#ended) this.res.end()
    this.#finish(null)
  }

  onError(err: Error): void {
    this.#finish(err)
  }

  /** Node destroys the request body when the client's connection closes mid-upload. */
  onBodyError(err: Error): void {
    if (this.#done === null) return
    this.aborted = true
    if (this.#abort !== null) this.#abort(err)
    else this.#finish(err)
  }

  /** Calls `done` once, with this exchange as the outcome. */
  end(failure: GatewayError | null): void {
    const done = this.#done!
    this.#done = null
    done(this.#opaque, failure, this)
  }

  #finish(err: Error | null): void {
    // The `close` listener stays: it does nothing once the exchange is done, and `res` is this
    // request's alone.
    if (this.#done === null) return
    // undici's abort holds its request (the header strings) and the upstream socket, and `res`
    // outlives the exchange for a while: kept, they survived young collections and were promoted
    // (about 30 KB more per collection under load, and more frequent full collections).
    this.#abort = null
    this.#resume = null
    if (err === null) {
      this.#forwarder.observe(this.upstreamMs)
      this.end(null)
      return
    }
    this.#forwarder.failed(err, this)
  }
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
  /** Body bytes in both directions, for the collection of spent chunks. */
  readonly spent: SpentBuffers

  constructor(options: ForwarderOptions) {
    const { origin, prefix, host, port } = parseUpstream(options.url)
    this.#prefix = prefix
    this.#host = host
    this.#port = port
    this.#connectTimeoutMs = options.connectTimeoutMs
    this.#trust = options.trustForwardedHeaders
    this.spent = new SpentBuffers()
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

  forward<T>(
    req: IncomingMessage,
    res: ServerResponse,
    authorization: string | null,
    requestId: string,
    opaque: T,
    done: ForwardDone<T>,
  ): void {
    const exchange = new Exchange(res, requestId, this, opaque, done)
    const headers: string[] = []
    const hasBody = forwardRequestHeaders(req, headers, authorization, requestId, this.#trust)
    // A client that leaves before its response is complete aborts the upstream request: undici
    // destroys the upstream socket, so PostgREST sees the connection cut.
    res.on('close', exchange.onClose)
    if (hasBody) req.on('error', (err: Error) => exchange.onBodyError(err))
    this.#pool.dispatch(
      {
        path: this.#prefix + targetPath(req.url),
        method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
        headers,
        // The request itself streams as the body: never buffered, Content-Length kept, and
        // undici pauses reading it while the upstream socket needs draining.
        body: hasBody ? req : null,
      },
      exchange as Dispatcher.DispatchHandler,
    )
  }

  /** Records the time to the upstream's response headers. */
  observe(upstreamMs: number): void {
    this.#metrics?.upstreamDuration.observe(upstreamMs / 1000)
  }

  /** Ends an exchange that failed: a client that left, or an upstream failure to answer or log. */
  failed<T>(err: Error, exchange: Exchange<T>): void {
    const res = exchange.res
    const started = exchange.upstreamMs >= 0
    if (started) this.observe(exchange.upstreamMs)
    else exchange.upstreamMs = performance.now() - exchange.startedAt
    if (exchange.aborted || isClientAbort(err)) {
      // Nothing more can reach the client; a started response must not look complete.
      if (res.headersSent && !res.destroyed) res.destroy()
      exchange.status = res.headersSent ? res.statusCode : CLIENT_CLOSED
      exchange.clientAborted = true
      exchange.end(null)
      return
    }
    const kind = classifyUpstreamError(err)
    if (kind !== 'closed') this.#errors?.[kind].inc()
    // The upstream failed mid-response: cut the client connection, so the client sees a cut
    // connection rather than a hang or a response that looks complete.
    if (res.headersSent && !res.destroyed) res.destroy()
    exchange.status = res.headersSent ? res.statusCode : 0
    exchange.end(translateUpstreamError(err, kind))
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
