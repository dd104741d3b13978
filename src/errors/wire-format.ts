// The single exit for errors: PostgREST's JSON body and headers, for PostgREST's cases byte for byte.
import type { ServerResponse } from 'node:http'
import type { GatewayError } from './gateway-error.js'

export interface ErrorResponse {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

/**
 * PostgREST encodes errors with aeson, whose objects serialise with keys in ascending order:
 * `{"code":..,"details":..,"hint":..,"message":..}`, compact.
 */
export function errorBody(err: GatewayError): string {
  return JSON.stringify({ code: err.code, details: err.details, hint: err.hint, message: err.message })
}

/** Haskell's `show` of a Text: double-quoted, with `"` and `\` escaped (PostgREST's error_description). */
function showText(text: string): string {
  return JSON.stringify(text)
}

export function errorResponse(err: GatewayError): ErrorResponse {
  const body = errorBody(err)
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'proxy-status':
      err.spec.origin === 'PostgREST'
        ? `PostgREST; error=${err.code}`
        : `postgrest-gateway; error=${err.code}`,
  }
  const challenge = err.spec.challenge
  if (challenge === 'invalid_token') {
    headers['www-authenticate'] = `Bearer error="invalid_token", error_description=${showText(err.message)}`
  } else if (challenge === 'bearer') {
    headers['www-authenticate'] = 'Bearer'
  }
  if (err.spec.retryAfter !== null) headers['retry-after'] = String(err.spec.retryAfter)
  return { status: err.status, headers, body }
}

/** Writes the error unless the response has already started (then the connection is cut instead). */
export function sendError(
  res: ServerResponse,
  err: GatewayError,
  extraHeaders?: Record<string, string>,
): void {
  if (res.headersSent) {
    res.destroy(err)
    return
  }
  const { status, headers, body } = errorResponse(err)
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders)
  res.writeHead(status, headers)
  res.end(body)
}
