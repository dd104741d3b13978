import { describe, expect, it } from 'vitest'
import { type KeySource, parseKeySet, type VerifyKey } from '../../../src/auth/key-set.js'
import type { VerifiedToken } from '../../../src/auth/types.js'
import { createVerifier, type VerifierOptions } from '../../../src/auth/verifier.js'
import { errorResponse, GatewayError } from '../../../src/errors/index.js'
import { createMetrics } from '../../../src/observability/metrics.js'
import {
  b64url,
  generateKeyPairJwk,
  octJwk,
  rawToken,
  type SignAlg,
  signHs,
  signWithKey,
} from '../../support/tokens.js'

const SECRET = 'reallyreallyreallyreallyverysafe'
const NOW = 1_700_000_000

function verifierFor(keys: KeySource | null, options: Partial<VerifierOptions> = {}) {
  let now = NOW
  const verifier = createVerifier({
    keys,
    aud: null,
    iss: null,
    clockSkewSeconds: 30,
    cacheMaxEntries: 100,
    now: () => now,
    ...options,
  })
  return {
    verifier,
    setNow(value: number) {
      now = value
    },
  }
}

const hsKeys = parseKeySet(SECRET, { isBase64: false })

function ok(result: VerifiedToken | Promise<VerifiedToken>): VerifiedToken {
  if (result instanceof Promise) throw new Error('expected a synchronous result')
  return result
}

interface Failure {
  kind: string
  code: string
  status: number
  message: string
  details: string | null
}

function failure(run: () => unknown): Failure {
  try {
    run()
  } catch (err) {
    if (!(err instanceof GatewayError)) throw err
    return { kind: err.kind, code: err.code, status: err.status, message: err.message, details: err.details }
  }
  throw new Error('expected a GatewayError')
}

function pgrst(kind: string, code: string, message: string, details: string | null = null): Failure {
  return { kind, code, status: 401, message, details }
}

describe('createVerifier: structure and header (jose-jwt parse order)', () => {
  const { verifier } = verifierFor(hsKeys)
  const verify = (token: string) => () => verifier.verify(token)

  it('answers PGRST300 when no key is configured', () => {
    const { verifier: none } = verifierFor(null)
    expect(failure(() => none.verify(signHs({}, SECRET)))).toEqual({
      kind: 'JwtSecretMissing',
      code: 'PGRST300',
      status: 500,
      message: 'Server lacks JWT secret',
      details: null,
    })
  })

  it('counts parts as PostgREST splits on dots; a JWE has 5', () => {
    expect(failure(verify('abc'))).toEqual(pgrst('JwtParts', 'PGRST301', 'Expected 3 parts in JWT; got 1'))
    expect(failure(verify('a.b'))).toEqual(pgrst('JwtParts', 'PGRST301', 'Expected 3 parts in JWT; got 2'))
    expect(failure(verify('a.b.c.d'))).toEqual(
      pgrst('JwtParts', 'PGRST301', 'Expected 3 parts in JWT; got 4'),
    )
    expect(failure(verify('eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d'))).toEqual(
      pgrst('JwtParts', 'PGRST301', 'Expected 3 parts in JWT; got 5'),
    )
    expect(failure(verify('..'))).toEqual(
      pgrst('JwtCrypto', 'PGRST301', 'JWT cryptographic operation failed'),
    )
  })

  it('reports undecodable headers as a cryptographic failure', () => {
    const crypto = pgrst('JwtCrypto', 'PGRST301', 'JWT cryptographic operation failed')
    const payload = b64url('{}')
    for (const header of [
      'quifquirndsjagnrgniur', // not JSON
      `${b64url('{"alg":"HS256"}')}=`, // padded
      b64url('{"alg":"HS256"}').replace(/^./, '+'), // standard alphabet
      `e${b64url('{"alg":"HS256"}')}`, // 4n+1 chars
      b64url('[1,2]'), // not an object
      b64url('{"typ":"JWT"}'), // no alg
      b64url('{"alg":256}'),
      b64url('{"alg":"HS256","kid":7}'),
      b64url('{"alg":"HS256","typ":1}'),
      b64url('{"alg":"HS256","enc":"A256GCM"}'), // a JWE header in 3 parts
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url'), // invalid UTF-8
    ]) {
      expect(failure(verify(`${header}.${payload}.c2ln`)), header).toEqual(crypto)
    }
  })

  it('refuses algorithms PostgREST does not verify as a wrong or unsupported algorithm', () => {
    const unsupported = pgrst('JwtBadAlgorithm', 'PGRST301', 'Wrong or unsupported encoding algorithm')
    for (const alg of ['PS256', 'hs256', 'HS1', 'RSA-OAEP']) {
      expect(failure(verify(`${b64url(JSON.stringify({ alg }))}.${b64url('{}')}.c2ln`)), alg).toEqual(
        unsupported,
      )
    }
  })

  it('refuses alg none in any spelling, with jose-jwt details', () => {
    for (const alg of ['None', 'NONE', 'nOnE']) {
      expect(failure(verify(rawToken({ alg, typ: 'JWT' }, {}, ''))).details, alg).toBe(
        "JWT is unsecured but expected 'alg' was not 'none'",
      )
    }
  })

  it('refuses alg none with jose-jwt details, before looking at keys or signature', () => {
    expect(failure(verify(rawToken({ alg: 'none', typ: 'JWT' }, {}, '')))).toEqual(
      pgrst(
        'JwtBadAlgorithm',
        'PGRST301',
        'Wrong or unsupported encoding algorithm',
        "JWT is unsecured but expected 'alg' was not 'none'",
      ),
    )
    // The payload is parsed first: a broken payload is a cryptographic failure.
    expect(failure(verify(`${b64url('{"alg":"none"}')}.!!.`)).kind).toBe('JwtCrypto')
  })

  it('refuses crit and b64:false headers as a cryptographic failure (extensions it cannot process)', () => {
    const crypto = pgrst('JwtCrypto', 'PGRST301', 'JWT cryptographic operation failed')
    expect(failure(verify(signHs({}, SECRET, { header: { crit: ['exp'], exp: 1 } })))).toEqual(crypto)
    expect(failure(verify(signHs({}, SECRET, { header: { b64: false, crit: ['b64'] } })))).toEqual(crypto)
    expect(failure(verify(signHs({}, SECRET, { header: { b64: false } })))).toEqual(crypto)
    expect(ok(verifier.verify(signHs({ a: 1 }, SECRET, { header: { b64: true } }))).claims).toEqual({ a: 1 })
  })

  it('reports bad base64url in payload or signature as a cryptographic failure', () => {
    const good = signHs({ sub: 'x' }, SECRET)
    const [h, p, s] = good.split('.') as [string, string, string]
    const crypto = pgrst('JwtCrypto', 'PGRST301', 'JWT cryptographic operation failed')
    expect(failure(verify(`${h}.${p}!.${s}`))).toEqual(crypto)
    expect(failure(verify(`${h}.${p} .${s}`))).toEqual(crypto)
    expect(failure(verify(`${h}.${p}.${s}=`))).toEqual(crypto)
    expect(failure(verify(`${h}.${p}.${s.slice(0, -1)}/`))).toEqual(crypto)
  })
})

describe('createVerifier: keys and signatures', () => {
  it('answers No suitable key when no key fits the alg or kid', () => {
    const { verifier } = verifierFor(hsKeys)
    const noKey = pgrst(
      'JwtNoSuitableKey',
      'PGRST301',
      'No suitable key or wrong key type',
      'No suitable key was found to decode the JWT',
    )
    // A plain secret is HS256 only (PostgREST: SymmetricJwk ... (Just HS256)) and has no kid.
    expect(failure(() => verifier.verify(signHs({}, SECRET, { alg: 'HS512' })))).toEqual(noKey)
    expect(failure(() => verifier.verify(signHs({}, SECRET, { header: { kid: 'k' } })))).toEqual(noKey)
    const rsa = generateKeyPairJwk('RS256')
    expect(failure(() => verifier.verify(signWithKey({}, rsa.privateKey, 'RS256')))).toEqual(noKey)
  })

  it('answers None of the keys when the signature does not verify', () => {
    const { verifier } = verifierFor(hsKeys)
    const bad = pgrst(
      'JwtBadSignature',
      'PGRST301',
      'No suitable key or wrong key type',
      'None of the keys was able to decode the JWT',
    )
    expect(failure(() => verifier.verify(signHs({}, `${SECRET}x`)))).toEqual(bad)
    const token = signHs({ role: 'user' }, SECRET)
    const tampered = token.replace(/\.[^.]+\./, `.${b64url('{"role":"admin"}')}.`)
    expect(failure(() => verifier.verify(tampered))).toEqual(bad)
    expect(failure(() => verifier.verify(`${token.slice(0, token.lastIndexOf('.'))}.`))).toEqual(bad)
    expect(failure(() => verifier.verify(`${token.slice(0, token.lastIndexOf('.'))}.AAAA`))).toEqual(bad)
  })

  const asymmetric: SignAlg[] = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
  for (const alg of asymmetric) {
    it(`verifies ${alg} and refuses it signed by another key`, () => {
      const pair = generateKeyPairJwk(alg, { kid: `${alg}-1` })
      const other = generateKeyPairJwk(alg)
      const keys = parseKeySet(JSON.stringify({ keys: [pair.publicJwk] }), { isBase64: false })
      const { verifier } = verifierFor(keys)
      const verified = ok(
        verifier.verify(signWithKey({ sub: 'u1' }, pair.privateKey, alg, { kid: `${alg}-1` })),
      )
      expect(verified.alg).toBe(alg)
      expect(verified.kid).toBe(`${alg}-1`)
      expect(verified.sub).toBe('u1')
      // Without a kid in the token, every key fitting the alg is tried.
      expect(ok(verifier.verify(signWithKey({ n: 1 }, pair.privateKey, alg))).claims).toEqual({ n: 1 })
      expect(
        failure(() => verifier.verify(signWithKey({}, other.privateKey, alg, { kid: `${alg}-1` }))).kind,
      ).toBe('JwtBadSignature')
    })
  }

  it('verifies EdDSA with Ed448 keys', () => {
    const pair = generateKeyPairJwk('Ed448')
    const { verifier } = verifierFor(parseKeySet(JSON.stringify(pair.publicJwk), { isBase64: false }))
    expect(ok(verifier.verify(signWithKey({ a: 1 }, pair.privateKey, 'EdDSA'))).claims).toEqual({ a: 1 })
  })

  for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
    it(`verifies ${alg} with an oct JWK and refuses a wrong secret`, () => {
      const keys = parseKeySet(JSON.stringify(octJwk(SECRET, { kid: 'h' })), { isBase64: false })
      const { verifier } = verifierFor(keys)
      expect(ok(verifier.verify(signHs({ a: alg }, SECRET, { alg, header: { kid: 'h' } }))).claims).toEqual({
        a: alg,
      })
      expect(
        failure(() => verifier.verify(signHs({}, 'another secret', { alg, header: { kid: 'h' } }))).kind,
      ).toBe('JwtBadSignature')
    })
  }

  it('refuses an ES256 token checked against a key of another curve', () => {
    const p384 = generateKeyPairJwk('ES384', { kid: 'e' })
    const { verifier } = verifierFor(parseKeySet(JSON.stringify(p384.publicJwk), { isBase64: false }))
    // Signed by the P-384 key with SHA-256 but labelled ES256: RFC 7518 ties ES256 to P-256.
    expect(failure(() => verifier.verify(signWithKey({}, p384.privateKey, 'ES256', { kid: 'e' }))).kind).toBe(
      'JwtBadSignature',
    )
  })

  it('refuses algorithm confusion: HS256 signed with the public key as the HMAC secret', () => {
    const rsa = generateKeyPairJwk('RS256', { kid: 'r' })
    const ec = generateKeyPairJwk('ES256', { kid: 'e' })
    const keys = parseKeySet(JSON.stringify({ keys: [rsa.publicJwk, ec.publicJwk] }), { isBase64: false })
    const { verifier } = verifierFor(keys)
    const noKey = 'JwtNoSuitableKey'
    for (const [kid, pair] of [
      ['r', rsa],
      ['e', ec],
    ] as const) {
      const pem = pair.publicKey.export({ format: 'pem', type: 'spki' }) as string
      const der = pair.publicKey.export({ format: 'der', type: 'spki' })
      const jwkText = JSON.stringify(pair.publicJwk)
      for (const secret of [pem, der, jwkText]) {
        expect(failure(() => verifier.verify(signHs({ role: 'admin' }, secret))).kind).toBe(noKey)
        expect(
          failure(() => verifier.verify(signHs({ role: 'admin' }, secret, { header: { kid } }))).kind,
        ).toBe(noKey)
      }
    }
  })

  it('matches the kid among several keys and tries every key without one', () => {
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const b = generateKeyPairJwk('ES256', { kid: 'b' })
    const keys = parseKeySet(JSON.stringify({ keys: [a.publicJwk, b.publicJwk, octJwk(SECRET)] }), {
      isBase64: false,
    })
    const { verifier } = verifierFor(keys)
    expect(ok(verifier.verify(signWithKey({ k: 'b' }, b.privateKey, 'ES256', { kid: 'b' }))).kid).toBe('b')
    expect(ok(verifier.verify(signWithKey({ k: 'b2' }, b.privateKey, 'ES256'))).kid).toBeNull()
    // Signed by b but naming a: only a is tried.
    expect(failure(() => verifier.verify(signWithKey({}, b.privateKey, 'ES256', { kid: 'a' }))).kind).toBe(
      'JwtBadSignature',
    )
    expect(failure(() => verifier.verify(signWithKey({}, b.privateKey, 'ES256', { kid: 'c' }))).kind).toBe(
      'JwtNoSuitableKey',
    )
    expect(ok(verifier.verify(signHs({ h: 1 }, SECRET, { alg: 'HS512' }))).claims).toEqual({ h: 1 })
  })

  it('never uses a use:enc key', () => {
    const enc = generateKeyPairJwk('ES256')
    const sig = generateKeyPairJwk('ES256')
    const keys = parseKeySet(
      JSON.stringify({
        keys: [
          { ...enc.publicJwk, kid: 'x', use: 'enc' },
          { ...sig.publicJwk, kid: 'y' },
        ],
      }),
      { isBase64: false },
    )
    const { verifier } = verifierFor(keys)
    expect(failure(() => verifier.verify(signWithKey({}, enc.privateKey, 'ES256', { kid: 'x' }))).kind).toBe(
      'JwtNoSuitableKey',
    )
    expect(failure(() => verifier.verify(signWithKey({}, enc.privateKey, 'ES256'))).kind).toBe(
      'JwtBadSignature',
    )
  })

  it('verifies with a base64 secret', () => {
    const bytes = Buffer.from(Array.from({ length: 32 }, (_, i) => 255 - i))
    const { verifier } = verifierFor(parseKeySet(bytes.toString('base64'), { isBase64: true }))
    expect(ok(verifier.verify(signHs({ b: 1 }, bytes))).claims).toEqual({ b: 1 })
  })
})

describe('createVerifier: claims (PostgREST checkForErrors order)', () => {
  const token = (claims: object | string) => signHs(claims, SECRET)

  it('refuses a payload that is not a JSON object', () => {
    const { verifier } = verifierFor(hsKeys)
    const parse = pgrst('JwtClaimsParse', 'PGRST303', 'Parsing claims failed')
    for (const payload of ['[1]', '"x"', '1', 'null', 'not json', '', '{"a":1']) {
      expect(
        failure(() => verifier.verify(token(payload))),
        payload,
      ).toEqual(parse)
    }
  })

  it('checks exp, nbf and iat at the 30 s skew boundaries', () => {
    const { verifier } = verifierFor(hsKeys)
    const v = (claims: object) => () => verifier.verify(token(claims))
    expect(ok(v({ exp: NOW - 30 })()).exp).toBe(NOW - 30)
    expect(failure(v({ exp: NOW - 31 }))).toEqual(pgrst('JwtExpired', 'PGRST303', 'JWT expired'))
    expect(ok(v({ nbf: NOW + 30 })()).nbf).toBe(NOW + 30)
    expect(failure(v({ nbf: NOW + 31 }))).toEqual(pgrst('JwtNotYetValid', 'PGRST303', 'JWT not yet valid'))
    expect(ok(v({ iat: NOW + 30 })()).iat).toBe(NOW + 30)
    expect(failure(v({ iat: NOW + 31 }))).toEqual(
      pgrst('JwtIssuedAtFuture', 'PGRST303', 'JWT issued at future'),
    )
  })

  it('floors a fractional clock as PostgREST does', () => {
    const { verifier } = verifierFor(hsKeys, { now: () => NOW + 0.99 })
    expect(ok(verifier.verify(token({ exp: NOW - 30 }))).exp).toBe(NOW - 30)
  })

  it('reads non-integral or out-of-Int64 time claims as 0 (sciToInt)', () => {
    const { verifier } = verifierFor(hsKeys)
    const v = (claims: object | string) => () => verifier.verify(token(claims))
    expect(failure(v({ exp: NOW + 1000.5 })).kind).toBe('JwtExpired')
    expect(failure(v({ exp: 1e30 })).kind).toBe('JwtExpired')
    expect(failure(v('{"exp":-1e30}')).kind).toBe('JwtExpired')
    expect(ok(v({ nbf: 1e30 })()).nbf).toBe(0)
    expect(ok(v({ iat: NOW + 100.5 })()).iat).toBe(0)
    expect(ok(v('{"exp":2.0e9}')()).exp).toBe(2e9)
  })

  it('treats null as absent and refuses other types, in the order exp, nbf, iat, aud', () => {
    const { verifier } = verifierFor(hsKeys)
    const v = (claims: object) => () => verifier.verify(token(claims))
    expect(ok(v({ exp: null, nbf: null, iat: null, aud: null })())).toMatchObject({
      exp: null,
      nbf: null,
      iat: null,
    })
    expect(failure(v({ exp: '1' }))).toEqual(
      pgrst('JwtExpNotNumber', 'PGRST303', "The JWT 'exp' claim must be a number"),
    )
    expect(failure(v({ nbf: true }))).toEqual(
      pgrst('JwtNbfNotNumber', 'PGRST303', "The JWT 'nbf' claim must be a number"),
    )
    expect(failure(v({ iat: {} }))).toEqual(
      pgrst('JwtIatNotNumber', 'PGRST303', "The JWT 'iat' claim must be a number"),
    )
    const audType = pgrst(
      'JwtAudNotStringOrArray',
      'PGRST303',
      "The JWT 'aud' claim must be a string or an array of strings",
    )
    expect(failure(v({ aud: 1 }))).toEqual(audType)
    expect(failure(v({ aud: ['a', 1] }))).toEqual(audType)
    expect(failure(v({ aud: {} }))).toEqual(audType)
    // The first failing claim wins.
    expect(failure(v({ exp: NOW - 100, nbf: 'x' })).kind).toBe('JwtExpired')
    expect(failure(v({ exp: 'x', nbf: NOW + 100 })).kind).toBe('JwtExpNotNumber')
    expect(failure(v({ nbf: NOW + 100, iat: 'x' })).kind).toBe('JwtNotYetValid')
    expect(failure(v({ iat: NOW + 100, aud: 1 })).kind).toBe('JwtIssuedAtFuture')
  })

  it('checks aud against the configured audience; missing, null or empty always pass', () => {
    const { verifier } = verifierFor(hsKeys, { aud: 'authenticated' })
    const v = (claims: object) => () => verifier.verify(token(claims))
    const notIn = pgrst('JwtNotInAudience', 'PGRST303', 'JWT not in audience')
    expect(ok(v({ aud: 'authenticated' })()).claims['aud']).toBe('authenticated')
    expect(ok(v({ aud: ['x', 'authenticated'] })()).claims['aud']).toEqual(['x', 'authenticated'])
    expect(ok(v({})()).claims).toEqual({})
    expect(ok(v({ aud: null })()).claims).toEqual({ aud: null })
    expect(ok(v({ aud: [] })()).claims).toEqual({ aud: [] })
    expect(failure(v({ aud: 'anon' }))).toEqual(notIn)
    expect(failure(v({ aud: '' }))).toEqual(notIn)
    expect(failure(v({ aud: ['anon', 'x'] }))).toEqual(notIn)
    expect(failure(v({ aud: ['authenticated', 2] })).kind).toBe('JwtAudNotStringOrArray')
  })

  it('accepts any aud when none is configured (an empty configured audience counts as none)', () => {
    for (const aud of [null, '']) {
      const { verifier } = verifierFor(hsKeys, { aud })
      expect(ok(verifier.verify(token({ aud: 'anything' }))).claims['aud']).toBe('anything')
    }
  })

  it('checks iss when configured', () => {
    const { verifier } = verifierFor(hsKeys, { iss: 'https://auth.example' })
    expect(ok(verifier.verify(token({ iss: 'https://auth.example' }))).claims['iss']).toBe(
      'https://auth.example',
    )
    const mismatch = pgrst('JwtIssuerMismatch', 'PGRST303', 'JWT issuer not accepted')
    expect(failure(() => verifier.verify(token({ iss: 'https://evil.example' })))).toEqual(mismatch)
    expect(failure(() => verifier.verify(token({})))).toEqual(mismatch)
    // Audience is checked before the issuer.
    const both = verifierFor(hsKeys, { iss: 'i', aud: 'a' }).verifier
    expect(failure(() => both.verify(token({ iss: 'x', aud: 'x' }))).kind).toBe('JwtNotInAudience')
  })

  it('sets sub only when a non-empty string, and sessionId from session_id', () => {
    const { verifier } = verifierFor(hsKeys)
    expect(ok(verifier.verify(token({ sub: 'u', session_id: 's' })))).toMatchObject({
      sub: 'u',
      sessionId: 's',
    })
    expect(ok(verifier.verify(token({ sub: '', session_id: 1 })))).toMatchObject({
      sub: null,
      sessionId: null,
    })
    expect(ok(verifier.verify(token({ sub: 42 })))).toMatchObject({ sub: null, sessionId: null })
    expect(ok(verifier.verify(token({ role: 'anon' })))).toMatchObject({ sub: null, alg: 'HS256', kid: null })
  })

  it('keeps __proto__ as plain data and never pollutes Object.prototype', () => {
    const { verifier } = verifierFor(hsKeys)
    const payloads = [
      '{"__proto__":{"polluted":"yes"},"sub":"u"}',
      '{"app_metadata":{"__proto__":{"polluted":"yes"},"role":"x"}}',
      '{"\\u005f_proto__":{"polluted":"yes"}}',
      '{"constructor":{"prototype":{"polluted":"yes"}}}',
    ]
    for (const payload of payloads) {
      const verified = ok(verifier.verify(token(payload)))
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
      expect(Object.getPrototypeOf(verified.claims)).toBeNull()
      // Spread and JSON keep `__proto__` as data.
      const copy: Record<string, unknown> = { ...verified.claims }
      expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
      expect(copy['polluted']).toBeUndefined()
      expect(JSON.parse(JSON.stringify(verified.claims))).toEqual(JSON.parse(payload))
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    const first = ok(verifier.verify(token(payloads[0]!)))
    expect(Object.hasOwn(first.claims, '__proto__')).toBe(true)
    expect(Object.getOwnPropertyDescriptor(first.claims, '__proto__')?.value).toEqual({ polluted: 'yes' })
    expect(first.claims['constructor']).toBeUndefined()
    expect(first.claims['toString']).toBeUndefined()
    const escaped = ok(verifier.verify(token(payloads[2]!)))
    expect(Object.keys(escaped.claims)).toEqual(['__proto__'])
  })

  it('keeps the last of duplicate keys (JSON.parse)', () => {
    const { verifier } = verifierFor(hsKeys)
    expect(ok(verifier.verify(token('{"role":"anon","role":"admin"}'))).claims['role']).toBe('admin')
  })
})

describe('createVerifier: cache of verified tokens', () => {
  it('returns the cached token synchronously and re-checks time claims on every hit', () => {
    const { verifier, setNow } = verifierFor(hsKeys)
    const t = signHs({ sub: 'u', exp: NOW + 60, nbf: NOW - 10 }, SECRET)
    const first = ok(verifier.verify(t))
    expect(verifier.size).toBe(1)
    // A copy of the string (as a new request would bring) finds the same entry.
    expect(verifier.verify(`${t} `.slice(0, -1))).toBe(first)
    setNow(NOW + 90)
    expect(verifier.verify(t)).toBe(first)
    setNow(NOW + 91)
    expect(failure(() => verifier.verify(t))).toEqual(pgrst('JwtExpired', 'PGRST303', 'JWT expired'))
    // The expired entry is dropped, not kept until eviction.
    expect(verifier.size).toBe(0)
    expect(failure(() => verifier.verify(t)).kind).toBe('JwtExpired')
    // A clock that goes back makes nbf fail on a hit too.
    setNow(NOW)
    const u = signHs({ nbf: NOW + 20 }, SECRET)
    ok(verifier.verify(u))
    setNow(NOW - 20)
    expect(failure(() => verifier.verify(u)).kind).toBe('JwtNotYetValid')
  })

  it('does not cache failures', () => {
    const { verifier, setNow } = verifierFor(hsKeys)
    const t = signHs({ nbf: NOW + 100 }, SECRET)
    expect(failure(() => verifier.verify(t)).kind).toBe('JwtNotYetValid')
    expect(failure(() => verifier.verify(signHs({}, `${SECRET}!`))).kind).toBe('JwtBadSignature')
    expect(verifier.size).toBe(0)
    setNow(NOW + 100)
    ok(verifier.verify(t))
    expect(verifier.size).toBe(1)
  })

  it('never serves an entry for a different token with the same cache hash', () => {
    const { verifier } = verifierFor(hsKeys)
    const t = signHs({ role: 'a' }, SECRET)
    ok(verifier.verify(t))
    // Same last 24 chars (the cache hash), different token: must be verified on its own.
    const forged = `${b64url('{"alg":"HS256"}')}.${b64url('{"role":"admin"}')}.${t.slice(t.lastIndexOf('.') + 1)}`
    expect(failure(() => verifier.verify(forged)).kind).toBe('JwtBadSignature')
  })

  it('stays within cacheMaxEntries, and 0 disables the cache', () => {
    const { verifier } = verifierFor(hsKeys, { cacheMaxEntries: 10 })
    for (let i = 0; i < 100; i++) ok(verifier.verify(signHs({ i }, SECRET)))
    expect(verifier.size).toBeLessThanOrEqual(10)
    expect(verifier.size).toBeGreaterThanOrEqual(5)
    const none = verifierFor(hsKeys, { cacheMaxEntries: 0 }).verifier
    const t = signHs({}, SECRET)
    const a = ok(none.verify(t))
    expect(none.verify(t)).not.toBe(a)
    expect(none.size).toBe(0)
  })

  it('keeps recently used entries when older ones are evicted', () => {
    const { verifier } = verifierFor(hsKeys, { cacheMaxEntries: 4 })
    const hot = signHs({ hot: true }, SECRET)
    const hotVerified = ok(verifier.verify(hot))
    for (let i = 0; i < 20; i++) {
      ok(verifier.verify(signHs({ i }, SECRET)))
      expect(verifier.verify(hot)).toBe(hotVerified)
    }
  })

  it('drops cached tokens when the key source reports a removed key (epoch)', () => {
    let epoch = 0
    let keys: readonly VerifyKey[] = hsKeys.keys
    const source: KeySource = {
      candidates: (alg, kid) => (keys.length === 0 ? [] : hsKeys.candidates(alg, kid)),
      ready: true,
      get epoch() {
        return epoch
      },
      get size() {
        return keys.length
      },
    }
    const { verifier } = verifierFor(source)
    const t = signHs({}, SECRET)
    ok(verifier.verify(t))
    expect(verifier.size).toBe(1)
    keys = []
    epoch++
    expect(failure(() => verifier.verify(t)).kind).toBe('JwtNoSuitableKey')
    expect(verifier.size).toBe(0)
  })

  it('clear() empties the cache', () => {
    const { verifier } = verifierFor(hsKeys)
    ok(verifier.verify(signHs({}, SECRET)))
    verifier.clear()
    expect(verifier.size).toBe(0)
  })
})

describe('createVerifier: asynchronous key sources', () => {
  it('returns a Promise when the key source must fetch, and caches the result', async () => {
    let calls = 0
    const source: KeySource = {
      candidates(alg, kid) {
        calls++
        return Promise.resolve(hsKeys.candidates(alg, kid))
      },
      ready: true,
      epoch: 0,
      size: 1,
    }
    const { verifier } = verifierFor(source)
    const t = signHs({ sub: 'u' }, SECRET)
    const pending = verifier.verify(t)
    expect(pending).toBeInstanceOf(Promise)
    const verified = await pending
    expect(verified.sub).toBe('u')
    expect(verifier.verify(t)).toBe(verified)
    expect(calls).toBe(1)
    await expect(verifier.verify(signHs({}, 'wrong wrong wrong wrong wrong wrong'))).rejects.toMatchObject({
      kind: 'JwtBadSignature',
    })
    await expect(verifier.verify(signHs({ exp: 1 }, SECRET))).rejects.toMatchObject({ kind: 'JwtExpired' })
  })

  it('passes a key source failure through (KeysUnavailable)', async () => {
    const source: KeySource = {
      candidates: () => Promise.reject(new GatewayError('KeysUnavailable')),
      ready: false,
      epoch: 0,
      size: 0,
    }
    const { verifier } = verifierFor(source)
    await expect(verifier.verify(signHs({}, SECRET))).rejects.toMatchObject({
      kind: 'KeysUnavailable',
      code: 'GW501',
    })
  })
})

describe('createVerifier: responses and metrics', () => {
  it('produces PostgREST responses for verification failures', () => {
    const { verifier } = verifierFor(hsKeys)
    const catchError = (token: string): GatewayError => {
      try {
        verifier.verify(token)
      } catch (err) {
        return err as GatewayError
      }
      throw new Error('no error')
    }
    const expired = errorResponse(catchError(signHs({ exp: NOW - 100 }, SECRET)))
    expect(expired).toEqual({
      status: 401,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'content-length': '70',
        'proxy-status': 'PostgREST; error=PGRST303',
        'www-authenticate': 'Bearer error="invalid_token", error_description="JWT expired"',
      },
      body: '{"code":"PGRST303","details":null,"hint":null,"message":"JWT expired"}',
    })
    const parts = errorResponse(catchError('a.b'))
    expect(parts.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"Expected 3 parts in JWT; got 2"}',
    )
    expect(parts.headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="Expected 3 parts in JWT; got 2"',
    )
    const none = errorResponse(catchError(rawToken({ alg: 'none' }, {}, '')))
    expect(none.status).toBe(401)
    expect(none.body).toBe(
      '{"code":"PGRST301","details":"JWT is unsecured but expected \'alg\' was not \'none\'","hint":null,"message":"Wrong or unsupported encoding algorithm"}',
    )
    const noKey = errorResponse(catchError(signHs({}, SECRET, { alg: 'HS384' })))
    expect(noKey.body).toBe(
      '{"code":"PGRST301","details":"No suitable key was found to decode the JWT","hint":null,"message":"No suitable key or wrong key type"}',
    )
    expect(noKey.headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="No suitable key or wrong key type"',
    )
  })

  it('counts outcomes and cache hits and misses', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const { verifier, setNow } = verifierFor(hsKeys, { metrics })
    const t = signHs({ exp: NOW + 10 }, SECRET)
    ok(verifier.verify(t))
    ok(verifier.verify(t))
    ok(verifier.verify(t))
    failure(() => verifier.verify(signHs({}, 'x'.repeat(40))))
    failure(() => verifier.verify('a.b'))
    setNow(NOW + 41)
    failure(() => verifier.verify(t))
    await verifier.close()
    const values = async (name: string) =>
      Object.fromEntries(
        (await metrics.registry.getSingleMetric(name)!.get()).values.map((v) => [
          Object.values(v.labels)[0],
          v.value,
        ]),
      )
    expect(await values('gateway_jwt_cache_total')).toEqual({ hit: 3, miss: 3 })
    expect(await values('gateway_jwt_verifications_total')).toEqual({
      ok: 1,
      signature: 1,
      malformed: 1,
      expired: 1,
    })
  })
})
