// Bearer: the first Authorization header -> token string | null (anonymous) | JwtEmpty, as PostgREST reads it.
import { GatewayError } from '../errors/index.js'

/**
 * wai-extra's `isSpace` on a header byte (Data.Word8): space, \t, \n, \v, \f, \r and Latin-1 NBSP.
 * Node hands header values over as latin1 strings, so one char is one byte.
 */
function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d) || code === 0xa0
}

/**
 * PostgREST (Auth.hs) reads `extractBearerAuth =<< lookup hAuthorization headers`, i.e. wai-extra's
 *
 *     extractBearerAuth bs = let (x, y) = S.break isSpace bs
 *                            in if S.map toLower x == "bearer" then Just (S.dropWhile isSpace y) else Nothing
 *
 * so: the scheme runs to the first whitespace and is compared case-insensitively; any other scheme
 * (`Basic ...`, a bare token, `Bearerxyz`) means no token: the request is anonymous. After `Bearer`
 * every leading whitespace char is dropped and the rest, inner and trailing whitespace included,
 * is the token. An empty rest (`Bearer`, `Bearer   `) is PostgREST's `EmptyAuthHeader`: 401.
 *
 * `lookup` takes the first header; Node keeps only the first `Authorization` of a request and drops
 * later duplicates, so `req.headers.authorization` is exactly that first value (Node has already
 * trimmed the outer spaces and tabs, RFC 9110 5.5).
 */
export function extractBearer(authorization: string | undefined): string | null {
  if (authorization === undefined) return null
  const length = authorization.length
  // The scheme must be exactly the six letters of "bearer", then whitespace or the end.
  if (length < 6) return null
  if (length > 6 && !isSpace(authorization.charCodeAt(6))) return null
  // ASCII case fold by OR 0x20: only letters map onto "bearer"'s lower-case letters.
  if (
    (authorization.charCodeAt(0) | 0x20) !== 0x62 || // b
    (authorization.charCodeAt(1) | 0x20) !== 0x65 || // e
    (authorization.charCodeAt(2) | 0x20) !== 0x61 || // a
    (authorization.charCodeAt(3) | 0x20) !== 0x72 || // r
    (authorization.charCodeAt(4) | 0x20) !== 0x65 || // e
    (authorization.charCodeAt(5) | 0x20) !== 0x72 // r
  ) {
    return null
  }
  let start = 6
  while (start < length && isSpace(authorization.charCodeAt(start))) start++
  if (start === length) throw new GatewayError('JwtEmpty')
  return authorization.slice(start)
}
