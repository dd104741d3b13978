import { describe, expect, it } from 'vitest'
import { GatewayError } from '../../../src/errors/index.js'
import { errorResponse } from '../../../src/errors/wire-format.js'

describe('errorResponse', () => {
  it('writes PostgREST bodies with aeson key order and the invalid_token challenge', () => {
    const res = errorResponse(new GatewayError('JwtBadSignature'))
    expect(res.status).toBe(401)
    expect(res.body).toBe(
      '{"code":"PGRST301","details":"None of the keys was able to decode the JWT","hint":null,"message":"No suitable key or wrong key type"}',
    )
    expect(res.headers).toEqual({
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(res.body)),
      'proxy-status': 'PostgREST; error=PGRST301',
      'www-authenticate':
        'Bearer error="invalid_token", error_description="No suitable key or wrong key type"',
    })
  })

  it('answers PGRST302 with a bare Bearer challenge', () => {
    const res = errorResponse(new GatewayError('AnonymousDisabled'))
    expect(res.status).toBe(401)
    expect(res.body).toBe(
      '{"code":"PGRST302","details":null,"hint":null,"message":"Anonymous access is disabled"}',
    )
    expect(res.headers['www-authenticate']).toBe('Bearer')
  })

  it('marks gateway-only errors with the gateway as origin and adds Retry-After where defined', () => {
    const res = errorResponse(new GatewayError('ClaimsUnavailable'))
    expect(res.status).toBe(503)
    expect(res.body).toBe(
      '{"code":"GW105","details":null,"hint":null,"message":"Current claims cannot be read"}',
    )
    expect(res.headers).toEqual({
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(res.body)),
      'proxy-status': 'postgrest-gateway; error=GW105',
      'retry-after': '5',
    })
  })

  it('specialises the message per instance, as PostgREST does for the part count', () => {
    const res = errorResponse(new GatewayError('JwtParts', { message: 'Expected 3 parts in JWT; got 2' }))
    expect(res.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"Expected 3 parts in JWT; got 2"}',
    )
    expect(res.headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="Expected 3 parts in JWT; got 2"',
    )
  })
})
