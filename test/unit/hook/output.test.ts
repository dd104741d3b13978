import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../../src/errors/index.js'
import { errorResponse } from '../../../src/errors/wire-format.js'
import { claimProblems, judgeOutput } from '../../../src/hook/output.js'

/** A token as Supabase Auth issues it, every required claim present and well typed. */
function supabaseClaims(): Record<string, unknown> {
  return {
    aud: 'authenticated',
    exp: 2_000_000_000,
    iat: 1_700_000_000,
    iss: 'https://project.supabase.co/auth/v1',
    sub: '7d3f5e1a-0000-4000-8000-000000000001',
    email: 'alice@example.com',
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: {},
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: 1_700_000_000 }],
    session_id: '0b0e6d34-0000-4000-8000-000000000002',
    is_anonymous: false,
  }
}

const REQUIRED = ['aud', 'exp', 'iat', 'sub', 'email', 'phone', 'role', 'aal', 'session_id', 'is_anonymous']

describe('judgeOutput: claims', () => {
  it('accepts Supabase-shaped claims and hands back the object as it is', () => {
    const claims = supabaseClaims()
    expect(judgeOutput({ claims })).toEqual({ kind: 'claims', claims })
  })

  it('accepts a minimal JWT: only the required claims', () => {
    const full = supabaseClaims()
    const claims: Record<string, unknown> = {}
    for (const name of REQUIRED) claims[name] = full[name]
    expect(judgeOutput({ claims }).kind).toBe('claims')
  })

  it('accepts aud as an array of strings, amr entries as strings, and is_anonymous of any type', () => {
    const claims = {
      ...supabaseClaims(),
      aud: ['authenticated', 'api'],
      amr: ['password'],
      is_anonymous: null,
    }
    expect(judgeOutput({ claims }).kind).toBe('claims')
  })

  for (const name of REQUIRED) {
    it(`refuses claims without '${name}'`, () => {
      const claims = supabaseClaims()
      delete claims[name]
      expect(judgeOutput({ claims })).toEqual({ kind: 'invalid', problems: [`claim '${name}': required`] })
    })
  }

  const wrongTypes: [string, unknown, string][] = [
    ['aud', 42, 'must be a string or an array of strings'],
    ['aud', ['authenticated', 7], 'must be a string or an array of strings'],
    ['exp', 2_000_000_000.5, 'must be an integer'],
    ['exp', '2000000000', 'must be an integer'],
    ['iat', null, 'must be an integer'],
    ['nbf', 'soon', 'must be an integer'],
    ['sub', 17, 'must be a string'],
    ['email', null, 'must be a string'],
    ['phone', 5551234, 'must be a string'],
    ['role', ['admin'], 'must be a string'],
    ['aal', 1, 'must be a string'],
    ['session_id', {}, 'must be a string'],
    ['iss', false, 'must be a string'],
    ['jti', 9, 'must be a string'],
    ['client_id', 9, 'must be a string'],
    ['app_metadata', ['admin'], 'must be an object'],
    ['app_metadata', null, 'must be an object'],
    ['user_metadata', 'x', 'must be an object'],
    ['amr', 'password', 'must be an array of strings or objects'],
    ['amr', [1], 'must be an array of strings or objects'],
  ]
  for (const [name, value, rule] of wrongTypes) {
    it(`refuses '${name}' = ${JSON.stringify(value)}: ${rule}`, () => {
      const claims = { ...supabaseClaims(), [name]: value }
      expect(judgeOutput({ claims })).toEqual({ kind: 'invalid', problems: [`claim '${name}': ${rule}`] })
    })
  }

  it('lists every broken rule, required ones first, naming claims and never values', () => {
    const claims: Record<string, unknown> = { ...supabaseClaims(), exp: 'never', role: 99 }
    delete claims['email']
    const problems = claimProblems(claims)
    expect(problems).toEqual([
      "claim 'email': required",
      "claim 'exp': must be an integer",
      "claim 'role': must be a string",
    ])
  })

  it('does not count inherited properties as claims', () => {
    const claims = Object.create({ email: 'inherited@example.com' }) as Record<string, unknown>
    Object.assign(claims, supabaseClaims())
    delete claims['email']
    expect(claimProblems(claims)).toEqual(["claim 'email': required"])
  })

  it('refuses an answer that is not an object, has no claims, or whose claims are not an object', () => {
    expect(judgeOutput([])).toEqual({ kind: 'invalid', problems: ['the answer is not a JSON object'] })
    expect(judgeOutput('claims')).toEqual({ kind: 'invalid', problems: ['the answer is not a JSON object'] })
    expect(judgeOutput(null)).toEqual({ kind: 'invalid', problems: ['the answer is not a JSON object'] })
    expect(judgeOutput({ sub: 'x' })).toEqual({ kind: 'invalid', problems: ['the claims field is missing'] })
    expect(judgeOutput({ claims: null })).toEqual({
      kind: 'invalid',
      problems: ['the claims field is not an object'],
    })
    expect(judgeOutput({ claims: [supabaseClaims()] })).toEqual({
      kind: 'invalid',
      problems: ['the claims field is not an object'],
    })
  })
})

describe('judgeOutput: the error object', () => {
  it('is a refusal with the hook status and message', () => {
    expect(judgeOutput({ error: { http_code: 403, message: 'SSO users may not use the API' } })).toEqual({
      kind: 'rejected',
      status: 403,
      message: 'SSO users may not use the API',
    })
  })

  it('wins over claims sent with it (Supabase checks the error before decoding the output)', () => {
    const answer = { claims: supabaseClaims(), error: { http_code: 401, message: 'no' } }
    expect(judgeOutput(answer)).toEqual({ kind: 'rejected', status: 401, message: 'no' })
  })

  it('defaults to 500 when http_code is absent, null or 0', () => {
    for (const error of [
      { message: 'm' },
      { http_code: null, message: 'm' },
      { http_code: 0, message: 'm' },
    ]) {
      expect(judgeOutput({ error })).toEqual({ kind: 'rejected', status: 500, message: 'm' })
    }
  })

  it('answers 500 for codes that are not HTTP error statuses', () => {
    for (const http_code of [200, 302, 42, 600]) {
      expect(judgeOutput({ error: { http_code, message: 'm' } })).toEqual({
        kind: 'rejected',
        status: 500,
        message: 'm',
      })
    }
  })

  it('is no error when the message is empty or absent (then the claims decide)', () => {
    const claims = supabaseClaims()
    expect(judgeOutput({ claims, error: { http_code: 403, message: '' } })).toEqual({
      kind: 'claims',
      claims,
    })
    expect(judgeOutput({ claims, error: { http_code: 500 } })).toEqual({ kind: 'claims', claims })
    expect(judgeOutput({ error: { http_code: 403, message: '' } })).toEqual({
      kind: 'invalid',
      problems: ['the claims field is missing'],
    })
  })

  it('is ignored when it does not decode as {http_code int, message string}', () => {
    const claims = supabaseClaims()
    expect(judgeOutput({ claims, error: { http_code: '403', message: 'm' } }).kind).toBe('claims')
    expect(judgeOutput({ claims, error: { http_code: 403.5, message: 'm' } }).kind).toBe('claims')
    expect(judgeOutput({ claims, error: { message: 7 } }).kind).toBe('claims')
    expect(judgeOutput({ claims, error: 'denied' }).kind).toBe('claims')
  })

  it('becomes a PostgREST-shaped answer with the hook status and message', () => {
    const outcome = judgeOutput({ error: { http_code: 451, message: 'Not in your country' } })
    if (outcome.kind !== 'rejected') throw new Error('expected a refusal')
    const err = new GatewayError('HookRejected', { status: outcome.status, message: outcome.message })
    const response = errorResponse(err)
    expect(response.status).toBe(451)
    expect(response.body).toBe('{"code":"GW301","details":null,"hint":null,"message":"Not in your country"}')
    expect(response.headers['proxy-status']).toBe('postgrest-gateway; error=GW301')
  })
})
