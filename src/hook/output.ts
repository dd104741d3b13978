// Hook stage: what a custom access token hook answered -> new claims, a refusal, or a contract violation.
import type { Claims } from '../auth/types.js'

/** The hook's answer, judged by Supabase Auth's rules; problems name claims and rules, never values. */
export type HookOutcome =
  | { readonly kind: 'claims'; readonly claims: Readonly<Claims> }
  | { readonly kind: 'rejected'; readonly status: number; readonly message: string }
  | { readonly kind: 'invalid'; readonly problems: readonly string[] }

type Rule = 'string' | 'integer' | 'object' | 'audience' | 'amr' | 'any'

// supabase/auth internal/tokens/service.go `MinimumViableTokenSchema` (JSON Schema draft-07), the
// schema the auth server checks a hook's claims against before it signs them.
const REQUIRED: readonly string[] = [
  'aud',
  'exp',
  'iat',
  'sub',
  'email',
  'phone',
  'role',
  'aal',
  'session_id',
  'is_anonymous',
]

const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  // Supabase's schema says `"type": ["string", "array"]` and leaves the items open; PostgREST then
  // refuses anything but strings (PGRST303 "... must be a string or an array of strings"), so an
  // array with other members is refused here, where the hook can be named as the culprit.
  ['aud', 'audience'],
  ['exp', 'integer'],
  ['iat', 'integer'],
  ['nbf', 'integer'],
  ['jti', 'string'],
  ['iss', 'string'],
  ['sub', 'string'],
  ['email', 'string'],
  ['phone', 'string'],
  ['app_metadata', 'object'],
  ['user_metadata', 'object'],
  ['role', 'string'],
  ['aal', 'string'],
  ['amr', 'amr'],
  ['session_id', 'string'],
  ['client_id', 'string'],
  // Required by the schema, with no type.
  ['is_anonymous', 'any'],
])

const RULE_TEXT: { readonly [R in Rule]: string } = {
  string: 'must be a string',
  integer: 'must be an integer',
  object: 'must be an object',
  audience: 'must be a string or an array of strings',
  amr: 'must be an array of strings or objects',
  any: '',
}

const hasOwn = Object.prototype.hasOwnProperty

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function follows(rule: Rule, value: unknown): boolean {
  switch (rule) {
    case 'string':
      return typeof value === 'string'
    // JSON Schema's integer: a number without a fractional part.
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value)
    case 'object':
      return isObject(value)
    case 'audience':
      if (typeof value === 'string') return true
      if (!Array.isArray(value)) return false
      for (const item of value) if (typeof item !== 'string') return false
      return true
    case 'amr':
      if (!Array.isArray(value)) return false
      for (const item of value) if (typeof item !== 'string' && !isObject(item)) return false
      return true
    case 'any':
      return true
  }
}

/** Every broken rule, in schema order: `claim 'email': required`, `claim 'exp': must be an integer`. */
export function claimProblems(claims: Readonly<Claims>): string[] {
  const problems: string[] = []
  for (const name of REQUIRED) {
    if (!hasOwn.call(claims, name)) problems.push(`claim '${name}': required`)
  }
  for (const [name, rule] of RULES) {
    if (hasOwn.call(claims, name) && !follows(rule, claims[name])) {
      problems.push(`claim '${name}': ${RULE_TEXT[rule]}`)
    }
  }
  return problems
}

/**
 * supabase/auth internal/hooks/hookerrors `Check`: `{"error": {"http_code", "message"}}` is an
 * error only when `message` is non-empty, and an error that does not decode into
 * `{http_code int, message string}` is ignored; `http_code` 0 or absent means 500.
 */
function hookError(value: unknown): { status: number; message: string } | null {
  if (!isObject(value)) return null
  const message = value['message']
  const code = value['http_code']
  if (message !== undefined && message !== null && typeof message !== 'string') return null
  if (code !== undefined && code !== null && !(typeof code === 'number' && Number.isInteger(code)))
    return null
  if (typeof message !== 'string' || message === '') return null
  let status = typeof code === 'number' && code !== 0 ? code : 500
  // Supabase writes the code as the HTTP status as it is; a gateway must not answer a refusal
  // with 2xx/3xx (the client would read an error body as data), nor with a status HTTP lacks.
  if (status < 400 || status > 599) status = 500
  return { status, message }
}

/**
 * Judges a hook's parsed JSON answer as Supabase Auth does: the error object first (hookerrors
 * `Check` runs before the output is decoded), then `claims` (v0hooks `CustomAccessTokenOutput`:
 * "output claims field is missing"), then the claims schema (`validateTokenClaims`).
 */
export function judgeOutput(value: unknown): HookOutcome {
  if (!isObject(value)) return { kind: 'invalid', problems: ['the answer is not a JSON object'] }
  const error = hookError(value['error'])
  if (error !== null) return { kind: 'rejected', status: error.status, message: error.message }
  if (!hasOwn.call(value, 'claims')) return { kind: 'invalid', problems: ['the claims field is missing'] }
  const claims = value['claims']
  if (!isObject(claims)) return { kind: 'invalid', problems: ['the claims field is not an object'] }
  const problems = claimProblems(claims)
  if (problems.length > 0) return { kind: 'invalid', problems }
  return { kind: 'claims', claims }
}
