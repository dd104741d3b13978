// The one error type every stage throws; the exit in wire-format.ts turns it into a response.
import { ERRORS, type ErrorCode, type ErrorKind, type ErrorSpec } from './codes.js'

/**
 * A failure with a known answer. `kind` selects the row in {@link ERRORS}; `message` and `details`
 * may be specialised per instance (PostgREST's "Expected 3 parts in JWT; got N", a hook's own
 * message). `reason` is for the log only and never reaches the client.
 */
export class GatewayError extends Error {
  readonly kind: ErrorKind
  readonly spec: ErrorSpec
  readonly code: ErrorCode
  readonly status: number
  readonly details: string | null
  readonly hint: string | null
  readonly reason: string | null

  constructor(
    kind: ErrorKind,
    options: {
      message?: string
      details?: string | null
      hint?: string | null
      status?: number
      reason?: string
      cause?: unknown
    } = {},
  ) {
    const spec = ERRORS[kind]
    super(options.message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = kind
    this.kind = kind
    this.spec = spec
    this.code = spec.code
    this.status = options.status ?? spec.status
    this.details = options.details === undefined ? spec.details : options.details
    this.hint = options.hint ?? null
    this.reason = options.reason ?? null
  }
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError
}
