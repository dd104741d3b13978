// Forward stage, failures: the one place that turns undici's and the socket layer's errors into answers.
import { GatewayError } from '../errors/index.js'
import type { UpstreamErrorKind } from '../observability/metrics.js'

/** An upstream failure's metric label, or `closed` when the pool was closed (shutdown, not counted). */
export type UpstreamFailureKind = UpstreamErrorKind | 'closed'

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  // Node's happy-eyeballs connect (autoSelectFamily) may report an AggregateError of attempts.
  if (err instanceof AggregateError) return errorCode(err.errors[0])
  return undefined
}

/**
 * Which kind of upstream failure `err` is. Connect-phase failures (refused, DNS, unreachable,
 * connect timeout) mean the request never reached PostgREST; `reset` means the connection broke
 * after it may have; anything unrecognised is `other`.
 */
export function classifyUpstreamError(err: unknown): UpstreamFailureKind {
  switch (errorCode(err)) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
    case 'EHOSTUNREACH':
    case 'EHOSTDOWN':
    case 'ENETUNREACH':
    case 'ENETDOWN':
    case 'EADDRNOTAVAIL':
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'connect'
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'timeout'
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'ECONNABORTED':
    case 'EPIPE':
      return 'reset'
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return 'closed'
    default:
      return 'other'
  }
}

/**
 * Errors that mean the client went away, not the upstream: our abort signal fired
 * (`UND_ERR_ABORTED`), the response stream closed before it finished (`ERR_STREAM_PREMATURE_CLOSE`),
 * or Node's server destroyed the request body because the client's connection closed mid-upload
 * (an `ECONNRESET` "aborted" built by Node without a `syscall`, unlike a socket's own ECONNRESET).
 */
export function isClientAbort(err: unknown): boolean {
  const code = errorCode(err)
  if (code === 'UND_ERR_ABORTED' || code === 'ERR_STREAM_PREMATURE_CLOSE') return true
  return code === 'ECONNRESET' && (err as { syscall?: unknown }).syscall === undefined
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = errorCode(err)
    return code === undefined ? `${err.name}: ${err.message}` : `${code}: ${err.message}`
  }
  return String(err)
}

/**
 * The answer for an upstream failure (DESIGN.md "Forwarding"): connect refused, DNS failure or
 * connect timeout -> 502 `UpstreamUnreachable`; no response headers in time (or a body stalled) ->
 * 504 `UpstreamTimeout`; anything else -> 502 `UpstreamFailed`. The undici error is kept as
 * `cause` and summarised in `reason`, for the log only.
 */
export function translateUpstreamError(err: unknown, kind: UpstreamFailureKind): GatewayError {
  const reason = describe(err)
  switch (kind) {
    case 'connect':
      return new GatewayError('UpstreamUnreachable', { reason, cause: err })
    case 'timeout':
      return new GatewayError('UpstreamTimeout', { reason, cause: err })
    case 'closed':
      return new GatewayError('ShuttingDown', { reason, cause: err })
    default:
      return new GatewayError('UpstreamFailed', { reason, cause: err })
  }
}
