// Every error the gateway answers with: the one table behind the wire format and the README.

/**
 * The closed set of failure conditions. PostgREST's own cases keep PostgREST's code, status and
 * message (POSTGREST-CONTRACT.md); gateway-only failures use `GW` codes grouped by stage:
 * 0xx the HTTP request itself, 1xx claims and revocation, 2xx role, 3xx hook, 4xx upstream,
 * 5xx the gateway itself.
 */
export type ErrorKind =
  | 'JwtSecretMissing'
  | 'JwtEmpty'
  | 'JwtParts'
  | 'JwtNoSuitableKey'
  | 'JwtBadSignature'
  | 'JwtBadAlgorithm'
  | 'JwtCrypto'
  | 'JwtUnsupportedType'
  | 'JwtClaimsParse'
  | 'JwtExpired'
  | 'JwtNotYetValid'
  | 'JwtIssuedAtFuture'
  | 'JwtNotInAudience'
  | 'JwtExpNotNumber'
  | 'JwtNbfNotNumber'
  | 'JwtIatNotNumber'
  | 'JwtAudNotStringOrArray'
  | 'JwtIssuerMismatch'
  | 'AnonymousDisabled'
  | 'KeysUnavailable'
  | 'UserNotFound'
  | 'UserDeleted'
  | 'UserBanned'
  | 'SessionRevoked'
  | 'ClaimsUnavailable'
  | 'RoleNotAllowed'
  | 'HookRejected'
  | 'HookContractViolation'
  | 'HookUnavailable'
  | 'UpstreamUnreachable'
  | 'UpstreamTimeout'
  | 'UpstreamFailed'
  | 'ShuttingDown'
  | 'Internal'
  | 'HeadersTooLarge'
  | 'MalformedRequest'
  | 'RequestTimeout'

export type ErrorCode =
  | 'PGRST300'
  | 'PGRST301'
  | 'PGRST302'
  | 'PGRST303'
  | 'GW001'
  | 'GW002'
  | 'GW003'
  | 'GW101'
  | 'GW102'
  | 'GW103'
  | 'GW104'
  | 'GW105'
  | 'GW201'
  | 'GW301'
  | 'GW302'
  | 'GW303'
  | 'GW401'
  | 'GW402'
  | 'GW403'
  | 'GW501'
  | 'GW502'
  | 'GW500'

/** What the auth challenge header says: PostgREST's two forms, or none. */
export type Challenge = 'invalid_token' | 'bearer' | 'none'

export interface ErrorSpec {
  readonly code: ErrorCode
  readonly status: number
  readonly message: string
  /** Fixed details, as PostgREST sends them; `null` when the instance supplies them or there are none. */
  readonly details: string | null
  readonly challenge: Challenge
  /** Who answered: PostgREST's own cases are byte-compatible with PostgREST. */
  readonly origin: 'PostgREST' | 'gateway'
  /** Seconds for `Retry-After`, for answers a client should retry. */
  readonly retryAfter: number | null
}

function pgrst(
  code: ErrorCode,
  status: number,
  message: string,
  details: string | null,
  challenge: Challenge,
): ErrorSpec {
  return { code, status, message, details, challenge, origin: 'PostgREST', retryAfter: null }
}

function gw(
  code: ErrorCode,
  status: number,
  message: string,
  challenge: Challenge = 'none',
  retryAfter: number | null = null,
): ErrorSpec {
  return { code, status, message, details: null, challenge, origin: 'gateway', retryAfter }
}

/** The table: one row per condition. The README's error table is checked against it by a test. */
export const ERRORS: { readonly [K in ErrorKind]: ErrorSpec } = {
  // PostgREST's cases (Error.hs, jose-jwt's decode messages for `details`).
  JwtSecretMissing: pgrst('PGRST300', 500, 'Server lacks JWT secret', null, 'none'),
  JwtEmpty: pgrst('PGRST301', 401, 'Empty JWT is sent in Authorization header', null, 'invalid_token'),
  JwtParts: pgrst('PGRST301', 401, 'Expected 3 parts in JWT; got N', null, 'invalid_token'),
  JwtNoSuitableKey: pgrst(
    'PGRST301',
    401,
    'No suitable key or wrong key type',
    'No suitable key was found to decode the JWT',
    'invalid_token',
  ),
  JwtBadSignature: pgrst(
    'PGRST301',
    401,
    'No suitable key or wrong key type',
    'None of the keys was able to decode the JWT',
    'invalid_token',
  ),
  JwtBadAlgorithm: pgrst('PGRST301', 401, 'Wrong or unsupported encoding algorithm', null, 'invalid_token'),
  JwtCrypto: pgrst('PGRST301', 401, 'JWT cryptographic operation failed', null, 'invalid_token'),
  JwtUnsupportedType: pgrst('PGRST301', 401, 'Unsupported token type', null, 'invalid_token'),
  JwtClaimsParse: pgrst('PGRST303', 401, 'Parsing claims failed', null, 'invalid_token'),
  JwtExpired: pgrst('PGRST303', 401, 'JWT expired', null, 'invalid_token'),
  JwtNotYetValid: pgrst('PGRST303', 401, 'JWT not yet valid', null, 'invalid_token'),
  JwtIssuedAtFuture: pgrst('PGRST303', 401, 'JWT issued at future', null, 'invalid_token'),
  JwtNotInAudience: pgrst('PGRST303', 401, 'JWT not in audience', null, 'invalid_token'),
  JwtExpNotNumber: pgrst('PGRST303', 401, "The JWT 'exp' claim must be a number", null, 'invalid_token'),
  JwtNbfNotNumber: pgrst('PGRST303', 401, "The JWT 'nbf' claim must be a number", null, 'invalid_token'),
  JwtIatNotNumber: pgrst('PGRST303', 401, "The JWT 'iat' claim must be a number", null, 'invalid_token'),
  JwtAudNotStringOrArray: pgrst(
    'PGRST303',
    401,
    "The JWT 'aud' claim must be a string or an array of strings",
    null,
    'invalid_token',
  ),
  // PostgREST has no issuer check; the gateway's answer has the same shape as a claims failure.
  JwtIssuerMismatch: pgrst('PGRST303', 401, 'JWT issuer not accepted', null, 'invalid_token'),
  AnonymousDisabled: pgrst('PGRST302', 401, 'Anonymous access is disabled', null, 'bearer'),
  // Gateway-only failures.
  KeysUnavailable: gw('GW501', 503, 'Verification keys are not available yet', 'none', 5),
  UserNotFound: gw('GW101', 401, 'User not found', 'invalid_token'),
  UserDeleted: gw('GW102', 401, 'User has been deleted', 'invalid_token'),
  UserBanned: gw('GW103', 401, 'User is banned', 'invalid_token'),
  SessionRevoked: gw('GW104', 401, 'Session has ended', 'invalid_token'),
  ClaimsUnavailable: gw('GW105', 503, 'Current claims cannot be read', 'none', 5),
  RoleNotAllowed: gw('GW201', 403, 'Role is not allowed'),
  HookRejected: gw('GW301', 403, 'Access token hook refused the request'),
  HookContractViolation: gw('GW302', 500, 'Access token hook returned an invalid response'),
  HookUnavailable: gw('GW303', 500, 'Access token hook failed'),
  UpstreamUnreachable: gw('GW401', 502, 'Upstream is unreachable'),
  UpstreamTimeout: gw('GW402', 504, 'Upstream timed out'),
  UpstreamFailed: gw('GW403', 502, 'Upstream connection failed'),
  ShuttingDown: gw('GW502', 503, 'Gateway is shutting down', 'none', 1),
  Internal: gw('GW500', 500, 'Internal gateway error'),
  HeadersTooLarge: gw('GW001', 431, 'Request header fields too large'),
  MalformedRequest: gw('GW002', 400, 'Malformed HTTP request'),
  RequestTimeout: gw('GW003', 408, 'Request not received in time'),
}

/** The README's error table, generated from {@link ERRORS} so the two cannot drift apart. */
export function renderErrorTable(): string {
  const rows = ['| code | status | condition | message |', '|---|---|---|---|']
  for (const kind of Object.keys(ERRORS) as ErrorKind[]) {
    const spec = ERRORS[kind]
    const details = spec.details === null ? '' : ` (details: ${spec.details})`
    rows.push(`| \`${spec.code}\` | ${spec.status} | ${kind} | ${spec.message}${details} |`)
  }
  return `${rows.join('\n')}\n`
}
