// Forward stage, headers: one pass over the raw header list in each direction, hop-by-hop fields dropped.
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'

/**
 * RFC 9110 7.6.1: fields that describe one connection and must not be forwarded, in either
 * direction. `Proxy-Connection` is the pre-standard spelling of `Connection`; `Proxy-Authenticate`
 * and `Proxy-Authorization` are addressed to the next hop only (RFC 9110 11.7).
 */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/**
 * Request fields the gateway consumes or sets itself. `Expect` is answered by Node's server
 * (`100 Continue`) before the request reaches the pipeline, and undici refuses to send it.
 */
const REQUEST_OWN: ReadonlySet<string> = new Set([
  'host',
  'authorization',
  'expect',
  'x-request-id',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
])

/** Connection options that name no header field (RFC 9112 9.3, 9.6). */
const CONNECTION_OPTIONS: ReadonlySet<string> = new Set(['close', 'keep-alive'])

/**
 * Collects the field names listed in a `Connection` header that are not hop-by-hop already, so the
 * caller can drop them as well (RFC 9110 7.6.1). Returns `listed` unchanged in the common case
 * (`Connection: keep-alive` / `close`), so nothing is allocated then.
 */
function listedInConnection(value: string, listed: string[] | null): string[] | null {
  let start = 0
  while (start <= value.length) {
    let end = value.indexOf(',', start)
    if (end === -1) end = value.length
    const token = value.slice(start, end).trim().toLowerCase()
    if (token !== '' && !CONNECTION_OPTIONS.has(token) && !HOP_BY_HOP.has(token)) {
      if (listed === null) listed = [token]
      else listed.push(token)
    }
    start = end + 1
  }
  return listed
}

/** Removes the pairs whose lowercase name is in `listed`; the rare path, after the main pass. */
function dropListed(headers: string[], listed: readonly string[]): void {
  let write = 0
  for (let read = 0; read < headers.length; read += 2) {
    const name = headers[read]!
    if (listed.includes(name.toLowerCase())) continue
    headers[write] = name
    headers[write + 1] = headers[read + 1]!
    write += 2
  }
  headers.length = write
}

/**
 * Copies the inbound request's headers into `out` (a flat `[name, value, ...]` list, as undici
 * takes it) in their original case and order, repeated ones kept repeated (PostgREST merges several
 * `Prefer`). Hop-by-hop fields, `Host` (undici sets the upstream's), `Expect` and the inbound
 * `Authorization` are dropped; `Authorization` (unless null), `X-Forwarded-For/Proto/Host` and
 * `X-Request-Id` are set by the gateway after the client's fields, so a client cannot make a
 * `Connection` header remove them.
 *
 * With `trustForwarded`, the inbound `X-Forwarded-For` is kept and the client address appended, and
 * inbound `X-Forwarded-Proto/Host` are kept; otherwise all three describe this hop only.
 *
 * @returns whether the request carries a body (`Content-Length` above 0, or `Transfer-Encoding`),
 *   the only two ways an HTTP/1.1 request has one (RFC 9112 6.3).
 */
export function forwardRequestHeaders(
  req: IncomingMessage,
  out: string[],
  authorization: string | null,
  requestId: string,
  trustForwarded: boolean,
): boolean {
  const raw = req.rawHeaders
  let host: string | undefined
  let forwardedFor: string | undefined
  let forwardedProto: string | undefined
  let forwardedHost: string | undefined
  let listed: string[] | null = null
  let hasBody = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection' || lower === 'proxy-connection') listed = listedInConnection(value, listed)
      else if (lower === 'transfer-encoding') hasBody = true
      continue
    }
    if (REQUEST_OWN.has(lower)) {
      switch (lower) {
        case 'host':
          host ??= value
          break
        case 'x-forwarded-for':
          // RFC 9110 5.3: repeated fields combine into one comma-separated list, in order.
          forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
          break
        case 'x-forwarded-proto':
          forwardedProto ??= value
          break
        case 'x-forwarded-host':
          forwardedHost ??= value
          break
      }
      continue
    }
    // Proxy-* request fields are meant for a proxy, never for the origin (PostgREST).
    if (lower.startsWith('proxy-')) continue
    if (lower === 'content-length' && value !== '0') hasBody = true
    out.push(name, value)
  }
  if (listed !== null) dropListed(out, listed)

  if (authorization !== null) out.push('Authorization', authorization)
  const address = req.socket.remoteAddress
  if (trustForwarded && forwardedFor !== undefined) {
    out.push('X-Forwarded-For', address === undefined ? forwardedFor : `${forwardedFor}, ${address}`)
  } else if (address !== undefined) {
    out.push('X-Forwarded-For', address)
  }
  const proto = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'
  out.push('X-Forwarded-Proto', trustForwarded && forwardedProto !== undefined ? forwardedProto : proto)
  const fhost = trustForwarded && forwardedHost !== undefined ? forwardedHost : host
  if (fhost !== undefined) out.push('X-Forwarded-Host', fhost)
  out.push('X-Request-Id', requestId)
  return hasBody
}

/**
 * The upstream's response headers (undici's raw list, original case, repeated `Set-Cookie` kept
 * repeated) minus hop-by-hop fields, plus `X-Request-Id`, ready for `res.writeHead(status, list)`.
 * `Proxy-Status` passes: PostgREST puts its error code there. Raw bytes are read as latin1, so any
 * byte of a value goes back out unchanged (what undici's own `responseHeaders: 'raw'` does).
 */
export function forwardResponseHeaders(raw: readonly (Buffer | string)[], requestId: string): string[] {
  const out: string[] = []
  let listed: string[] | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const rawName = raw[i]!
    const rawValue = raw[i + 1]!
    const name = typeof rawName === 'string' ? rawName : rawName.toString('latin1')
    const value = typeof rawValue === 'string' ? rawValue : rawValue.toString('latin1')
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection' || lower === 'proxy-connection') listed = listedInConnection(value, listed)
      continue
    }
    // The gateway's request id is the one the client sees and the access log carries.
    if (lower === 'x-request-id') continue
    out.push(name, value)
  }
  if (listed !== null) dropListed(out, listed)
  out.push('X-Request-Id', requestId)
  return out
}
