import { describe, expect, it } from 'vitest'
import { parseKeySet } from '../../../src/auth/key-set.js'
import { generateKeyPairJwk, octJwk } from '../../../test/support/tokens.js'

const SECRET = 'reallyreallyreallyreallyverysafe'

describe('parseKeySet', () => {
  it('takes a plain secret of at least 32 chars as one HS256 key without kid (PostgREST parseSecret)', () => {
    const set = parseKeySet(SECRET, { isBase64: false })
    expect(set.size).toBe(1)
    expect(set.keys[0]).toMatchObject({ kind: 'hmac', kid: null, alg: 'HS256' })
    expect(set.candidates('HS256', null)).toEqual([set.keys[0]])
    expect(set.candidates('HS512', null)).toEqual([])
    expect(set.candidates('HS256', 'some-kid')).toEqual([])
    expect(set.ready).toBe(true)
  })

  it('refuses a secret shorter than 32 chars', () => {
    expect(() => parseKeySet('x'.repeat(31), { isBase64: false })).toThrow(
      'the JWT secret must be at least 32 characters long',
    )
  })

  it('decodes a base64 secret first, PostgREST style (url alphabet mapped, whitespace trimmed)', () => {
    const bytes = Buffer.from(Array.from({ length: 48 }, (_, i) => (i * 37) % 256))
    const encoded = ` ${bytes.toString('base64').replaceAll('/', '_').replaceAll('+', '-').replaceAll('=', '.')}\n`
    const set = parseKeySet(encoded, { isBase64: true })
    expect(set.keys[0]!.key.export()).toEqual(bytes)
    expect(() => parseKeySet('not base64!!', { isBase64: true })).toThrow(
      'the JWT secret is not valid base64 (jwt-secret-is-base64 is set)',
    )
    // The 32-byte minimum applies to the decoded bytes.
    expect(() => parseKeySet(Buffer.alloc(31).toString('base64'), { isBase64: true })).toThrow(
      'at least 32 characters',
    )
  })

  it('accepts a base64-encoded JWKS', () => {
    const jwks = JSON.stringify({ keys: [octJwk(SECRET, { kid: 'a' })] })
    const set = parseKeySet(Buffer.from(jwks).toString('base64'), { isBase64: true })
    expect(set.keys.map((k) => k.kid)).toEqual(['a'])
  })

  it('accepts a single JWK; an oct JWK without alg serves HS256/384/512', () => {
    const set = parseKeySet(JSON.stringify(octJwk('short is fine in a JWK')), { isBase64: false })
    expect(set.candidates('HS256', null)).toHaveLength(1)
    expect(set.candidates('HS384', null)).toHaveLength(1)
    expect(set.candidates('HS512', null)).toHaveLength(1)
    expect(set.candidates('RS256', null)).toHaveLength(0)
  })

  it('uses the public half of private JWKs', () => {
    const rsa = generateKeyPairJwk('RS256', { kid: 'r' })
    const set = parseKeySet(JSON.stringify(rsa.privateJwk), { isBase64: false })
    expect(set.keys[0]!.key.type).toBe('public')
    expect(set.keys[0]!.key.export({ format: 'jwk' })).toEqual({
      kty: 'RSA',
      n: rsa.publicJwk.n,
      e: rsa.publicJwk.e,
    })
  })

  it('selects by kid and by algorithm-to-key-type fit, honouring a key own alg (jose-jwt canDecodeJws)', () => {
    const ec256 = generateKeyPairJwk('ES256', { kid: 'e1' })
    const ec384 = generateKeyPairJwk('ES384', { kid: 'e2' })
    const rsa = generateKeyPairJwk('RS256', { kid: 'r1' })
    const ed = generateKeyPairJwk('EdDSA', { kid: 'd1' })
    const ed448 = generateKeyPairJwk('Ed448')
    const set = parseKeySet(
      JSON.stringify({
        keys: [
          ec256.publicJwk,
          ec384.publicJwk,
          { ...rsa.publicJwk, alg: 'RS384' },
          ed.publicJwk,
          ed448.publicJwk,
          octJwk(SECRET, { kid: 'h1', alg: 'HS512' }),
          octJwk(SECRET),
        ],
      }),
      { isBase64: false },
    )
    const kids = (alg: Parameters<typeof set.candidates>[0], kid: string | null) =>
      set.candidates(alg, kid).map((k) => k.kid ?? `(${k.kind})`)
    expect(kids('ES256', null)).toEqual(['e1', 'e2'])
    expect(kids('ES256', 'e1')).toEqual(['e1'])
    expect(kids('ES256', 'r1')).toEqual([])
    expect(kids('RS256', null)).toEqual([])
    expect(kids('RS384', 'r1')).toEqual(['r1'])
    expect(kids('EdDSA', null)).toEqual(['d1', '(okp)'])
    expect(kids('HS256', null)).toEqual(['(hmac)'])
    expect(kids('HS512', null)).toEqual(['h1', '(hmac)'])
    expect(kids('HS512', 'h1')).toEqual(['h1'])
    // A token kid matches only keys with exactly that kid: keys without one are not tried.
    expect(kids('HS256', 'h1')).toEqual([])
  })

  it('never uses use:enc keys and skips unsupported ones with a reason', () => {
    const ec = generateKeyPairJwk('ES256', { kid: 'sig' })
    const set = parseKeySet(
      JSON.stringify({
        keys: [
          { ...ec.publicJwk, kid: 'enc', use: 'enc' },
          ec.publicJwk,
          { kty: 'EC', crv: 'secp256k1', x: 'AA', y: 'AA', kid: 'k1' },
          { kty: 'RSA', n: 'AQAB', e: 'AQAB', alg: 'PS256', kid: 'ps' },
          { kty: 'RSA', n: 'AQAB', e: 'AQAB', alg: 'RSA-OAEP', kid: 'oaep' },
          { kty: 'OKP', crv: 'X25519', x: 'AA' },
          { kty: 'oct', k: 'c2VjcmV0', use: 'other' },
          { kid: 'no-kty' },
        ],
      }),
      { isBase64: false },
    )
    expect(set.keys.map((k) => k.kid)).toEqual(['sig'])
    expect(set.candidates('ES256', 'enc')).toEqual([])
    expect(set.skipped).toEqual([
      { index: 0, kid: 'enc', reason: "'use' is 'enc' (encryption keys never verify signatures)" },
      { index: 2, kid: 'k1', reason: 'unsupported EC curve' },
      { index: 3, kid: 'ps', reason: "unsupported 'alg' PS256" },
      { index: 4, kid: 'oaep', reason: "'alg' RSA-OAEP is an encryption algorithm" },
      { index: 5, kid: null, reason: 'unsupported OKP curve' },
      { index: 6, kid: null, reason: "'use' must be 'sig' or 'enc'" },
      { index: 7, kid: 'no-kty', reason: "missing 'kty'" },
    ])
  })

  it('refuses a JWKS without a usable key, a JWK it cannot use, and other JSON objects', () => {
    expect(() => parseKeySet('{"keys":[]}', { isBase64: false })).toThrow(
      'the JWKS has no usable verification key (it is empty)',
    )
    expect(() =>
      parseKeySet('{"keys":[{"kty":"oct","k":"c2VjcmV0","use":"enc"}]}', { isBase64: false }),
    ).toThrow(
      "the JWKS has no usable verification key (key 0: 'use' is 'enc' (encryption keys never verify signatures))",
    )
    expect(() => parseKeySet('{"kty":"RSA","n":"!!","e":"AQAB"}', { isBase64: false })).toThrow(
      "the JWK cannot be used: RSA key without base64url 'n' and 'e'",
    )
    expect(() =>
      parseKeySet('{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}', { isBase64: false }),
    ).toThrow(/^the JWK cannot be used: invalid key material/)
    expect(() => parseKeySet(`{"secret":"${SECRET}"}`, { isBase64: false })).toThrow(
      'the JWT secret is a JSON object but neither a JWK (no "kty") nor a JWKS (no "keys")',
    )
  })

  it('takes JSON that is not an object as a plain secret, as PostgREST does', () => {
    const set = parseKeySet(`"${SECRET}"`, { isBase64: false })
    expect(set.keys[0]!.key.export().toString()).toBe(`"${SECRET}"`)
  })
})
