// Forward stage, headers: one pass over the raw header list in each direction, hop-by-hop fields dropped.
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'

// What each direction does with a field, by its lowercase name (see `fieldKind`).
/** Any other field: passed on. */
const PASS = 0
/**
 * RFC 9110 7.6.1: a field that describes one connection and is not forwarded, in either
 * direction: `Keep-Alive`, `TE`, `Trailer`, `Upgrade`; `Proxy-Authenticate` and
 * `Proxy-Authorization` are addressed to the next hop only (RFC 9110 11.7).
 */
const HOP = 1
/** `Connection`, or `Proxy-Connection` (its pre-standard spelling): hop-by-hop, and names more. */
const CONNECTION = 2
/** Hop-by-hop; in a request, it means a body (RFC 9112 6.3). */
const TRANSFER_ENCODING = 3
/**
 * Request fields the gateway consumes or sets itself. `Expect` is answered by Node's server
 * (`100 Continue`) before the request reaches the pipeline, and undici refuses to send it.
 */
const HOST = 4
const FORWARDED_FOR = 5
const FORWARDED_PROTO = 6
const FORWARDED_HOST = 7
const AUTHORIZATION = 8
const EXPECT = 9
/** Set by the gateway in both directions. */
const REQUEST_ID = 10
/** Passed on; in a request, a value other than 0 means a body. */
const CONTENT_LENGTH = 11
/** Any other `Proxy-*` field: meant for a proxy, never for the origin; passed back to the client. */
const PROXY_OTHER = 12

/**
 * Whether `name` is `lower` but for ASCII case. `lower` is lowercase letters and `-`; OR-ing 0x20
 * into a byte maps an upper-case letter onto its lower case and leaves `-` as it is, and only those
 * bytes map onto the bytes of `lower` (but for CR, which no field name holds).
 */
function named(name: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    if ((name.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false
  }
  return true
}

/**
 * The kind of a field by its name, in any case: a switch on the length and one comparison or two,
 * with no lower-case copy of the name and no hash lookup of it (most fields are none of these and
 * differ from the candidates of their length in the first letter).
 */
function fieldKind(name: string): number {
  switch (name.length) {
    case 2:
      if (named(name, 'te')) return HOP
      break
    case 4:
      if (named(name, 'host')) return HOST
      break
    case 6:
      if (named(name, 'expect')) return EXPECT
      break
    case 7:
      if (named(name, 'trailer') || named(name, 'upgrade')) return HOP
      break
    case 10:
      if (named(name, 'connection')) return CONNECTION
      if (named(name, 'keep-alive')) return HOP
      break
    case 12:
      if (named(name, 'x-request-id')) return REQUEST_ID
      break
    case 13:
      if (named(name, 'authorization')) return AUTHORIZATION
      break
    case 14:
      if (named(name, 'content-length')) return CONTENT_LENGTH
      break
    case 15:
      if (named(name, 'x-forwarded-for')) return FORWARDED_FOR
      break
    case 16:
      if (named(name, 'proxy-connection')) return CONNECTION
      if (named(name, 'x-forwarded-host')) return FORWARDED_HOST
      break
    case 17:
      if (named(name, 'transfer-encoding')) return TRANSFER_ENCODING
      if (named(name, 'x-forwarded-proto')) return FORWARDED_PROTO
      break
    case 18:
      if (named(name, 'proxy-authenticate')) return HOP
      break
    case 19:
      if (named(name, 'proxy-authorization')) return HOP
      break
  }
  return name.length >= 6 && named(name, 'proxy-') ? PROXY_OTHER : PASS
}

function isHopByHop(kind: number): boolean {
  return kind === HOP || kind === CONNECTION || kind === TRANSFER_ENCODING
}

/** Connection options that name no header field (RFC 9112 9.3, 9.6). */
const CONNECTION_OPTIONS: ReadonlySet<string> = new Set(['close', 'keep-alive'])

/**
 * Collects the field names listed in a `Connection` header that are not hop-by-hop already, so the
 * caller can drop them as well (RFC 9110 7.6.1). Returns `listed` unchanged in the common case
 * (`Connection: keep-alive` / `close`), so nothing is allocated then.
 */
function listedInConnection(value: string, listed: string[] | null): string[] | null {
  if (value === 'keep-alive' || value === 'close') return listed
  let start = 0
  while (start <= value.length) {
    let end = value.indexOf(',', start)
    if (end === -1) end = value.length
    const token = value.slice(start, end).trim().toLowerCase()
    if (token !== '' && !CONNECTION_OPTIONS.has(token) && !isHopByHop(fieldKind(token))) {
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
 * `Connection` header remove them. The names it sets are lowercase (field names are
 * case-insensitive, RFC 9110 5.1): undici lowercases and looks up every name it does not know in
 * another case, about 600 instructions per field.
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
    switch (fieldKind(name)) {
      case PASS:
        out.push(name, value)
        break
      case CONTENT_LENGTH:
        if (value !== '0') hasBody = true
        out.push(name, value)
        break
      case CONNECTION:
        listed = listedInConnection(value, listed)
        break
      case TRANSFER_ENCODING:
        hasBody = true
        break
      case HOST:
        host ??= value
        break
      case FORWARDED_FOR:
        // RFC 9110 5.3: repeated fields combine into one comma-separated list, in order.
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`
        break
      case FORWARDED_PROTO:
        forwardedProto ??= value
        break
      case FORWARDED_HOST:
        forwardedHost ??= value
        break
      // HOP, AUTHORIZATION, EXPECT, REQUEST_ID, PROXY_OTHER: not sent.
    }
  }
  if (listed !== null) dropListed(out, listed)

  if (authorization !== null) out.push('Authorization', authorization)
  const address = req.socket.remoteAddress
  if (trustForwarded && forwardedFor !== undefined) {
    out.push('x-forwarded-for', address === undefined ? forwardedFor : `${forwardedFor}, ${address}`)
  } else if (address !== undefined) {
    out.push('x-forwarded-for', address)
  }
  const proto = (req.socket as TLSSocket).encrypted === true ? 'https' : 'http'
  out.push('x-forwarded-proto', trustForwarded && forwardedProto !== undefined ? forwardedProto : proto)
  const fhost = trustForwarded && forwardedHost !== undefined ? forwardedHost : host
  if (fhost !== undefined) out.push('x-forwarded-host', fhost)
  out.push('x-request-id', requestId)
  return hasBody
}

/** A response field name seen before: its bytes, its text and its kind. */
interface KnownName {
  readonly bytes: Buffer
  readonly text: string
  readonly kind: number
}

/** Response field names by a hash of their bytes: a PostgREST sends the same few on every answer. */
const NAME_BUCKETS = 64
const NAME_WAYS = 4
const NAMES: KnownName[][] = Array.from({ length: NAME_BUCKETS }, () => [])

/**
 * The text and kind of a response field name given as bytes: from {@link NAMES} when the same
 * bytes were seen before (a JavaScript loop over a dozen bytes costs less than making the string
 * and classifying it), else made and remembered, in place of another name of the same bucket once
 * it holds {@link NAME_WAYS} (so at most 256 names are kept).
 */
function responseName(bytes: Buffer): KnownName {
  const length = bytes.length
  // FNV-1a.
  let hash = 0x811c9dc5 | 0
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ bytes[i]!, 0x01000193)
  const bucket = NAMES[hash & (NAME_BUCKETS - 1)]!
  for (let k = 0; k < bucket.length; k++) {
    const known = bucket[k]!
    const seen = known.bytes
    if (seen.length !== length) continue
    let i = 0
    while (i < length && seen[i] === bytes[i]) i++
    if (i === length) return known
  }
  const text = bytes.toString('latin1')
  const name: KnownName = { bytes: Buffer.from(bytes), text, kind: fieldKind(text) }
  if (bucket.length < NAME_WAYS) bucket.push(name)
  else bucket[(hash >>> 6) & (NAME_WAYS - 1)] = name
  return name
}

/** A Content-Length value as a number: plain decimal digits (RFC 9110 8.6), else -1. */
function decimal(value: string): number {
  if (value.length === 0 || value.length > 15) return -1
  let n = 0
  for (let i = 0; i < value.length; i++) {
    const digit = value.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    n = n * 10 + digit
  }
  return n
}

/**
 * Writes the upstream's response headers (undici's raw list, original case, repeated `Set-Cookie`
 * kept repeated) minus hop-by-hop fields, plus `X-Request-Id`, into `out`, ready for
 * `res.writeHead(status, out)`. `Proxy-Status` passes: PostgREST puts its error code there. Raw
 * bytes are read as latin1, so any byte of a value goes back out unchanged (what undici's own
 * `responseHeaders: 'raw'` does); the values of dropped fields are not read, but for `Connection`'s.
 *
 * @returns the body's length from the one `Content-Length` field, or -1 (none, several, or not a
 *   plain number).
 */
export function forwardResponseHeaders(
  raw: readonly (Buffer | string)[],
  requestId: string,
  out: string[],
): number {
  let listed: string[] | null = null
  let contentLength = -2
  for (let i = 0; i < raw.length; i += 2) {
    const rawName = raw[i]!
    let name: string
    let kind: number
    if (typeof rawName === 'string') {
      name = rawName
      kind = fieldKind(rawName)
    } else {
      const known = responseName(rawName)
      name = known.text
      kind = known.kind
    }
    // The gateway's request id is the one the client sees and the access log carries.
    if (kind === HOP || kind === TRANSFER_ENCODING || kind === REQUEST_ID) continue
    const rawValue = raw[i + 1]!
    const value = typeof rawValue === 'string' ? rawValue : rawValue.toString('latin1')
    if (kind === CONNECTION) {
      listed = listedInConnection(value, listed)
      continue
    }
    if (kind === CONTENT_LENGTH) contentLength = contentLength === -2 ? decimal(value) : -1
    out.push(name, value)
  }
  if (listed !== null) dropListed(out, listed)
  out.push('X-Request-Id', requestId)
  return contentLength === -2 ? -1 : contentLength
}
