// Security: a corpus of hostile tokens through the real gateway, each with its whole expected answer, and nothing forwarded.
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  b64url,
  generateKeyPairJwk,
  type KeyPairJwk,
  octJwk,
  signHs,
  signWithKey,
} from '../../support/tokens.js'
import {
  get,
  INBOUND_SECRET,
  type InProcessGateway,
  parseRawResponse,
  payloadOf,
  type RecordingUpstream,
  rawExchange,
  startInProcessGateway,
  startRecordingUpstream,
} from './support.js'

const now = () => Math.floor(Date.now() / 1000)
const SUB = 'a11ce000-0000-4000-8000-000000000001'

let upstream: RecordingUpstream
let gateway: InProcessGateway
let rsa: KeyPairJwk
let ec: KeyPairJwk
let attacker: KeyPairJwk
/** A server that must never be asked for anything: `jku` / `x5u` point at it. */
let lure: Server
let lureHits = 0
let lureUrl: string

beforeAll(async () => {
  rsa = generateKeyPairJwk('RS256', { kid: 'rsa' })
  ec = generateKeyPairJwk('ES256', { kid: 'ec' })
  attacker = generateKeyPairJwk('RS256', { kid: 'attacker' })
  lure = createServer((_req, res) => {
    lureHits++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ keys: [attacker.publicJwk] }))
  })
  lure.listen(0, '127.0.0.1')
  await once(lure, 'listening')
  lureUrl = `http://127.0.0.1:${(lure.address() as AddressInfo).port}`
  upstream = await startRecordingUpstream()
  // The inbound key set holds an HMAC secret (no kid) and two public keys: the setting in which
  // algorithm confusion would matter.
  const jwks = { keys: [octJwk(INBOUND_SECRET), rsa.publicJwk, ec.publicJwk] }
  gateway = await startInProcessGateway(upstream.url, {
    GATEWAY_JWT_SECRET: JSON.stringify(jwks),
    GATEWAY_JWT_AUD: 'authenticated',
  })
})

afterAll(async () => {
  await gateway?.close()
  await upstream?.close()
  lure?.closeAllConnections()
  await new Promise<void>((resolve) => (lure ? lure.close(() => resolve()) : resolve()))
})

function valid(claims: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: SUB, aud: 'authenticated', exp: now() + 3600, iat: now(), ...claims }
}

function hmac(input: string): string {
  return createHmac('sha256', INBOUND_SECRET).update(input).digest('base64url')
}

/** An HS256 token over raw payload text (duplicate keys, odd numbers, invalid UTF-8 cannot go through JSON.stringify). */
function hsRaw(payload: Buffer | string, header: Record<string, unknown> = {}): string {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', ...header }))}.${b64url(payload)}`
  return `${input}.${hmac(input)}`
}

/** A valid token whose signature has a `-` or `_`, so that its standard base64 form differs. */
function tokenWithUrlAlphabet(): string {
  for (let nonce = 0; ; nonce++) {
    const token = signHs(valid({ nonce }), INBOUND_SECRET)
    if (/[-_]/.test(token.split('.')[2]!)) return token
  }
}

/** PostgREST's error body (aeson key order), as the gateway must send it. */
function pgrstBody(code: string, message: string, details: string | null = null): string {
  return JSON.stringify({ code, details, hint: null, message })
}

interface Expected {
  readonly status: number
  readonly body: string
}

const BAD_ALGORITHM: Expected = {
  status: 401,
  body: pgrstBody(
    'PGRST301',
    'Wrong or unsupported encoding algorithm',
    "JWT is unsecured but expected 'alg' was not 'none'",
  ),
}
const NO_SUITABLE_KEY: Expected = {
  status: 401,
  body: pgrstBody(
    'PGRST301',
    'No suitable key or wrong key type',
    'No suitable key was found to decode the JWT',
  ),
}
const BAD_SIGNATURE: Expected = {
  status: 401,
  body: pgrstBody(
    'PGRST301',
    'No suitable key or wrong key type',
    'None of the keys was able to decode the JWT',
  ),
}
const CRYPTO: Expected = { status: 401, body: pgrstBody('PGRST301', 'JWT cryptographic operation failed') }
const CLAIMS_PARSE: Expected = { status: 401, body: pgrstBody('PGRST303', 'Parsing claims failed') }
const EXPIRED: Expected = { status: 401, body: pgrstBody('PGRST303', 'JWT expired') }
const EXP_NOT_NUMBER: Expected = {
  status: 401,
  body: pgrstBody('PGRST303', "The JWT 'exp' claim must be a number"),
}
const AUD_TYPE: Expected = {
  status: 401,
  body: pgrstBody('PGRST303', "The JWT 'aud' claim must be a string or an array of strings"),
}
const NOT_IN_AUDIENCE: Expected = { status: 401, body: pgrstBody('PGRST303', 'JWT not in audience') }
const ROLE_NOT_ALLOWED: Expected = {
  status: 403,
  body: JSON.stringify({ code: 'GW201', details: null, hint: null, message: 'Role is not allowed' }),
}

interface Case {
  readonly name: string
  readonly token: () => string
  /** Refused with this answer, or `pass` (forwarded with a minted token). */
  readonly expected: Expected | 'pass'
}

function noneToken(alg: string, signature: string): string {
  return `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(valid()))}.${signature}`
}

const CASES: Case[] = [
  // alg none, in any spelling, signed or not.
  ...['none', 'None', 'NONE', 'nOnE'].flatMap((alg) => [
    { name: `alg ${alg}, empty signature`, token: () => noneToken(alg, ''), expected: BAD_ALGORITHM },
    {
      name: `alg ${alg}, with the HMAC signature of a valid token`,
      token: () => noneToken(alg, signHs(valid(), INBOUND_SECRET).split('.')[2]!),
      expected: BAD_ALGORITHM,
    },
  ]),
  // Algorithm confusion: an HMAC "secret" that is the public key, in every form an attacker has it.
  {
    name: 'HS256 signed with the RSA public key as PEM',
    token: () => signHs(valid(), rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the RSA public key as PKCS#1 PEM',
    token: () => signHs(valid(), rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the RSA public key as DER',
    token: () => signHs(valid(), rsa.publicKey.export({ type: 'spki', format: 'der' })),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the RSA public JWK JSON',
    token: () => signHs(valid(), JSON.stringify(rsa.publicJwk)),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the RSA public JWK JSON, kid of the RSA key',
    token: () => signHs(valid(), JSON.stringify(rsa.publicJwk), { header: { kid: 'rsa' } }),
    expected: NO_SUITABLE_KEY,
  },
  {
    name: 'HS256 signed with the EC public key as PEM',
    token: () => signHs(valid(), ec.publicKey.export({ type: 'spki', format: 'pem' }) as string),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the EC public key as DER',
    token: () => signHs(valid(), ec.publicKey.export({ type: 'spki', format: 'der' })),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'HS256 signed with the EC public JWK JSON, kid of the EC key',
    token: () => signHs(valid(), JSON.stringify(ec.publicJwk), { header: { kid: 'ec' } }),
    expected: NO_SUITABLE_KEY,
  },
  {
    name: 'HS256 signed with the raw RSA modulus bytes',
    token: () => signHs(valid(), Buffer.from(rsa.publicJwk.n!, 'base64url')),
    expected: BAD_SIGNATURE,
  },
  // kid is only ever compared with configured kids: never a path, a query or a URL.
  ...[
    '../../etc/passwd',
    "' or 1=1 --",
    '/dev/null',
    'rsa\u0000',
    'file:///etc/passwd',
    'x'.repeat(4000),
  ].map((kid) => ({
    name: `kid ${JSON.stringify(kid.length > 40 ? `${kid.slice(0, 10)}... (${kid.length})` : kid)}`,
    token: () => signHs(valid(), INBOUND_SECRET, { header: { kid } }),
    expected: NO_SUITABLE_KEY,
  })),
  {
    name: 'kid as a number',
    token: () => signHs(valid(), INBOUND_SECRET, { header: { kid: 1 } }),
    expected: CRYPTO,
  },
  // jku / x5u / jwk: keys the token brings along are never fetched and never trusted.
  {
    name: 'jku to an attacker JWKS, kid of the attacker key',
    token: () =>
      signWithKey(valid(), attacker.privateKey, 'RS256', {
        kid: 'attacker',
        header: { jku: `${lureUrl}/jwks.json` },
      }),
    expected: NO_SUITABLE_KEY,
  },
  {
    name: 'jku to an attacker JWKS, no kid',
    token: () =>
      signWithKey(valid(), attacker.privateKey, 'RS256', { header: { jku: `${lureUrl}/jwks.json` } }),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'x5u to an attacker certificate',
    token: () =>
      signWithKey(valid(), attacker.privateKey, 'RS256', { header: { x5u: `${lureUrl}/cert.pem` } }),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'embedded jwk of the attacker key',
    token: () => signWithKey(valid(), attacker.privateKey, 'RS256', { header: { jwk: attacker.publicJwk } }),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'embedded jwk with the kid of the real RSA key',
    token: () =>
      signWithKey(valid(), attacker.privateKey, 'RS256', {
        kid: 'rsa',
        header: { jwk: { ...attacker.publicJwk, kid: 'rsa' } },
      }),
    expected: BAD_SIGNATURE,
  },
  {
    name: 'embedded oct jwk (attacker-chosen HMAC secret)',
    token: () => signHs(valid(), 'attacker-secret', { header: { jwk: octJwk('attacker-secret') } }),
    expected: BAD_SIGNATURE,
  },
  // Nested JWT: cty is not interpreted; the payload must itself be a claims object.
  {
    name: 'nested JWT (cty JWT, payload is a signed token)',
    token: () => hsRaw(JSON.stringify(signHs(valid(), INBOUND_SECRET)), { cty: 'JWT' }),
    expected: CLAIMS_PARSE,
  },
  {
    name: 'nested JWT (cty JWT, payload is the bare inner token text)',
    token: () => hsRaw(signHs(valid(), INBOUND_SECRET), { cty: 'JWT' }),
    expected: CLAIMS_PARSE,
  },
  // Extensions the verifier does not implement are refused, not ignored.
  { name: 'crit ["exp"]', token: () => hsRaw(JSON.stringify(valid()), { crit: ['exp'] }), expected: CRYPTO },
  { name: 'crit []', token: () => hsRaw(JSON.stringify(valid()), { crit: [] }), expected: CRYPTO },
  {
    name: 'b64 false (unencoded payload)',
    token: () => hsRaw(JSON.stringify(valid()), { b64: false, crit: ['b64'] }),
    expected: CRYPTO,
  },
  {
    name: 'b64 false without crit',
    token: () => hsRaw(JSON.stringify(valid()), { b64: false }),
    expected: CRYPTO,
  },
  {
    name: 'JWE header (enc) in 3 parts',
    token: () => hsRaw(JSON.stringify(valid()), { enc: 'A256GCM' }),
    expected: CRYPTO,
  },
  // exp of every odd shape: PostgREST's sciToInt makes non-integral or out-of-range numbers 0.
  {
    name: 'exp as float',
    token: () => signHs(valid({ exp: now() + 3600.5 }), INBOUND_SECRET),
    expected: EXPIRED,
  },
  {
    name: 'exp as string',
    token: () => signHs(valid({ exp: String(now() + 3600) }), INBOUND_SECRET),
    expected: EXP_NOT_NUMBER,
  },
  { name: 'exp negative', token: () => signHs(valid({ exp: -1 }), INBOUND_SECRET), expected: EXPIRED },
  { name: 'exp 1e30', token: () => signHs(valid({ exp: 1e30 }), INBOUND_SECRET), expected: EXPIRED },
  {
    name: 'exp 1e309 (Infinity when parsed)',
    token: () => hsRaw(`{"sub":"${SUB}","aud":"authenticated","exp":1e309}`),
    expected: EXPIRED,
  },
  {
    name: 'exp -1e309',
    token: () => hsRaw(`{"sub":"${SUB}","aud":"authenticated","exp":-1e309}`),
    expected: EXPIRED,
  },
  { name: 'exp true', token: () => signHs(valid({ exp: true }), INBOUND_SECRET), expected: EXP_NOT_NUMBER },
  {
    name: 'exp as array',
    token: () => signHs(valid({ exp: [now() + 3600] }), INBOUND_SECRET),
    expected: EXP_NOT_NUMBER,
  },
  { name: 'exp null (absent)', token: () => signHs(valid({ exp: null }), INBOUND_SECRET), expected: 'pass' },
  // aud of odd types.
  { name: 'aud number', token: () => signHs(valid({ aud: 42 }), INBOUND_SECRET), expected: AUD_TYPE },
  {
    name: 'aud object',
    token: () => signHs(valid({ aud: { authenticated: true } }), INBOUND_SECRET),
    expected: AUD_TYPE,
  },
  {
    name: 'aud array with a number',
    token: () => signHs(valid({ aud: ['authenticated', 1] }), INBOUND_SECRET),
    expected: AUD_TYPE,
  },
  { name: 'aud boolean', token: () => signHs(valid({ aud: true }), INBOUND_SECRET), expected: AUD_TYPE },
  {
    name: 'aud other string',
    token: () => signHs(valid({ aud: 'admin' }), INBOUND_SECRET),
    expected: NOT_IN_AUDIENCE,
  },
  {
    name: 'aud array without ours',
    token: () => signHs(valid({ aud: ['admin'] }), INBOUND_SECRET),
    expected: NOT_IN_AUDIENCE,
  },
  { name: 'aud empty array', token: () => signHs(valid({ aud: [] }), INBOUND_SECRET), expected: 'pass' },
  {
    name: 'aud array containing ours',
    token: () => signHs(valid({ aud: ['x', 'authenticated'] }), INBOUND_SECRET),
    expected: 'pass',
  },
  // Encodings.
  {
    name: 'payload with invalid UTF-8',
    token: () =>
      hsRaw(
        Buffer.concat([
          Buffer.from(`{"sub":"${SUB}","name":"`),
          Buffer.from([0xc3, 0x28]),
          Buffer.from('"}'),
        ]),
      ),
    expected: CLAIMS_PARSE,
  },
  {
    name: 'header with invalid UTF-8',
    token: () => {
      const header = Buffer.concat([
        Buffer.from('{"alg":"HS256","x":"'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}'),
      ])
      const input = `${b64url(header)}.${b64url(JSON.stringify(valid()))}`
      return `${input}.${hmac(input)}`
    },
    expected: CRYPTO,
  },
  {
    name: 'standard base64 alphabet (+ and /) in the signature',
    token: () => {
      const [h, p, s] = tokenWithUrlAlphabet().split('.') as [string, string, string]
      return `${h}.${p}.${Buffer.from(s, 'base64url').toString('base64').replace(/=+$/, '')}`
    },
    expected: CRYPTO,
  },
  {
    name: 'padding (=) on the payload',
    token: () => {
      const [h, p, s] = signHs(valid({ pad: 'x' }), INBOUND_SECRET).split('.') as [string, string, string]
      return `${h}.${p}${'='.repeat((4 - (p.length % 4)) % 4 || 2)}.${s}`
    },
    expected: CRYPTO,
  },
  {
    name: 'space inside the signature',
    token: () => {
      const token = signHs(valid(), INBOUND_SECRET)
      return `${token.slice(0, -10)} ${token.slice(-10)}`
    },
    expected: CRYPTO,
  },
  // Role escalation through duplicate keys: the last one wins, as for PostgREST (aeson).
  {
    name: 'duplicate role keys, the last one privileged',
    token: () => hsRaw(`{"sub":"${SUB}","aud":"authenticated","role":"authenticated","role":"service_role"}`),
    expected: ROLE_NOT_ALLOWED,
  },
  {
    name: 'app_metadata.role service_role',
    token: () => signHs(valid({ app_metadata: { role: 'service_role' } }), INBOUND_SECRET),
    expected: ROLE_NOT_ALLOWED,
  },
  {
    name: 'role postgres',
    token: () => signHs(valid({ role: 'postgres' }), INBOUND_SECRET),
    expected: ROLE_NOT_ALLOWED,
  },
  {
    // Not a role at all: refused like a non-string role at the claim path, never given the default.
    name: 'role as an object',
    token: () => signHs(valid({ role: { toString: 'service_role' } }), INBOUND_SECRET),
    expected: ROLE_NOT_ALLOWED,
  },
  {
    name: 'user_metadata.role service_role is never read',
    token: () => signHs(valid({ user_metadata: { role: 'service_role' } }), INBOUND_SECRET),
    expected: 'pass',
  },
]

describe('hostile tokens through the gateway', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const token = c.token()
      const before = upstream.requests.length
      const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${token}` })
      if (c.expected === 'pass') {
        expect(res.status).toBe(200)
        expect(upstream.requests.length).toBe(before + 1)
        const minted = payloadOf(upstream.requests.at(-1)!.authorization)
        expect(minted?.['role']).toBe('authenticated')
        expect(minted?.['sub']).toBe(SUB)
        return
      }
      expect({ status: res.status, body: res.body }).toEqual(c.expected)
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
      if (c.expected.status === 401) {
        const message = (JSON.parse(c.expected.body) as { message: string }).message
        expect(res.headers.get('www-authenticate')).toBe(
          `Bearer error="invalid_token", error_description=${JSON.stringify(message)}`,
        )
      }
      // Refused means never forwarded.
      expect(upstream.requests.length).toBe(before)
    })
  }

  it('never fetched a jku or x5u URL', () => {
    expect(lureHits).toBe(0)
  })

  it('logs no token and no claim value of the hostile corpus', () => {
    const logs = gateway.logs()
    expect(logs).toContain('"status":401')
    expect(logs).not.toContain('eyJ')
    expect(logs).not.toContain(SUB)
    expect(logs).not.toContain('service_role')
  })
})

describe('duplicate JSON keys', () => {
  it('the last sub wins, and the minted token names only that user', async () => {
    const other = 'b0b00000-0000-4000-8000-000000000002'
    const token = hsRaw(`{"sub":"${SUB}","aud":"authenticated","exp":${now() + 600},"sub":"${other}"}`)
    const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${token}` })
    expect(res.status).toBe(200)
    const minted = payloadOf(upstream.requests.at(-1)!.authorization)!
    expect(minted['sub']).toBe(other)
    // The minted payload is re-serialised: one sub, no duplicate for PostgREST to resolve otherwise.
    const text = Buffer.from(upstream.requests.at(-1)!.authorization!.split('.')[1]!, 'base64url').toString()
    expect(text.match(/"sub"/g)).toHaveLength(1)
  })

  it('a later exp cannot extend an earlier, expired one (last wins: expired)', async () => {
    const token = hsRaw(`{"sub":"${SUB}","exp":${now() + 600},"exp":1}`)
    const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${token}` })
    expect({ status: res.status, body: res.body }).toEqual(EXPIRED)
  })
})

describe('prototype pollution through claims', () => {
  it('__proto__ and constructor claims stay data: nothing inherited, nothing polluted, role unchanged', async () => {
    const exp = now() + 600
    const payload =
      `{"sub":"${SUB}","aud":"authenticated","exp":${exp},` +
      `"__proto__":{"role":"service_role","polluted":"yes","exp":1},` +
      `"constructor":{"prototype":{"polluted":"yes"}},` +
      `"app_metadata":{"__proto__":{"role":"service_role"},"constructor":{"prototype":{"role":"service_role"}}}}`
    const before = upstream.requests.length
    const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${hsRaw(payload)}` })
    expect(res.status).toBe(200)
    expect(upstream.requests.length).toBe(before + 1)
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined()
    expect((Object.prototype as unknown as Record<string, unknown>)['role']).toBeUndefined()
    const text = Buffer.from(upstream.requests.at(-1)!.authorization!.split('.')[1]!, 'base64url').toString()
    const minted = JSON.parse(text) as Record<string, unknown>
    expect(minted['role']).toBe('authenticated')
    // exp comes from the token's own exp, not from the value hidden behind __proto__.
    expect(minted['exp']).toBe(exp)
    // constructor is carried as plain data; a top-level __proto__ is carried as data or dropped.
    expect(Object.hasOwn(minted, 'constructor')).toBe(true)
    expect(minted['constructor']).toEqual({ prototype: { polluted: 'yes' } })
    if (Object.hasOwn(minted, '__proto__')) {
      expect(Object.getOwnPropertyDescriptor(minted, '__proto__')?.value).toEqual({
        role: 'service_role',
        polluted: 'yes',
        exp: 1,
      })
    }
    expect(Object.getPrototypeOf(minted)).toBe(Object.prototype)
  })
})

describe('Authorization header forms', () => {
  const token = () => signHs(valid(), INBOUND_SECRET)

  it.each([
    ['lower-case bearer', (t: string) => `bearer ${t}`],
    ['upper-case BEARER', (t: string) => `BEARER ${t}`],
    ['several spaces after the scheme', (t: string) => `Bearer    ${t}`],
    ['a tab after the scheme', (t: string) => `Bearer\t${t}`],
  ])('%s passes', async (_name, form) => {
    const before = upstream.requests.length
    const res = await get(`${gateway.url}/items`, { authorization: form(token()) })
    expect(res.status).toBe(200)
    expect(upstream.requests.length).toBe(before + 1)
    expect(payloadOf(upstream.requests.at(-1)!.authorization)?.['sub']).toBe(SUB)
  })

  it.each([
    ['Basic', (t: string) => `Basic ${t}`],
    ['Bearerx (no separator)', (t: string) => `Bearerx${t}`],
    ['a bare token', (t: string) => t],
  ])('%s is anonymous: forwarded without Authorization', async (_name, form) => {
    const before = upstream.requests.length
    const res = await get(`${gateway.url}/items`, { authorization: form(token()) })
    expect(res.status).toBe(200)
    expect(upstream.requests.length).toBe(before + 1)
    expect(upstream.requests.at(-1)!.authorization).toBeNull()
  })

  it('Bearer with nothing after it is 401 PGRST301 empty JWT', async () => {
    const res = await get(`${gateway.url}/items`, { authorization: 'Bearer   ' })
    expect({ status: res.status, body: res.body }).toEqual({
      status: 401,
      body: pgrstBody('PGRST301', 'Empty JWT is sent in Authorization header'),
    })
  })

  it('several Authorization headers: the first one decides (valid first passes)', async () => {
    const before = upstream.requests.length
    const { response } = await rawExchange(
      gateway.port,
      `GET /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token()}\r\nAuthorization: Bearer garbage\r\nConnection: close\r\n\r\n`,
    )
    expect(parseRawResponse(response).status).toBe(200)
    expect(upstream.requests.length).toBe(before + 1)
    // Only the minted one goes upstream: the client's second header is not passed on.
    expect(upstream.requests.at(-1)!.headers['authorization']).toHaveLength(1)
    expect(payloadOf(upstream.requests.at(-1)!.authorization)?.['sub']).toBe(SUB)
  })

  it('several Authorization headers: the first one decides (garbage first is refused)', async () => {
    const before = upstream.requests.length
    const { response } = await rawExchange(
      gateway.port,
      `GET /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b\r\nAuthorization: Bearer ${token()}\r\nConnection: close\r\n\r\n`,
    )
    const parsed = parseRawResponse(response)
    expect({ status: parsed.status, body: parsed.body }).toEqual({
      status: 401,
      body: pgrstBody('PGRST301', 'Expected 3 parts in JWT; got 2'),
    })
    expect(upstream.requests.length).toBe(before)
  })

  it('an anonymous first header hides a valid second one (PostgREST reads only the first)', async () => {
    const before = upstream.requests.length
    const { response } = await rawExchange(
      gateway.port,
      `GET /items HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpw\r\nAuthorization: Bearer ${token()}\r\nConnection: close\r\n\r\n`,
    )
    expect(parseRawResponse(response).status).toBe(200)
    expect(upstream.requests.length).toBe(before + 1)
    expect(upstream.requests.at(-1)!.headers['authorization']).toBeUndefined()
  })
})

describe('large tokens', () => {
  it('a valid 8 KB token passes, and a 12 KB one', async () => {
    for (const size of [8 * 1024, 12 * 1024]) {
      const token = signHs(valid({ pad: 'p'.repeat(Math.floor((size * 3) / 4)) }), INBOUND_SECRET)
      expect(token.length).toBeGreaterThan(size)
      const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${token}` })
      expect(res.status).toBe(200)
    }
  })

  it('a request head over GATEWAY_MAX_HEADER_BYTES gets 431 with the gateway JSON body, never forwarded', async () => {
    const before = upstream.requests.length
    const token = signHs(valid({ pad: 'p'.repeat(20 * 1024) }), INBOUND_SECRET)
    const { response } = await rawExchange(
      gateway.port,
      `GET /items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    )
    const parsed = parseRawResponse(response)
    expect(parsed.status).toBe(431)
    expect(parsed.headers['content-type']).toBe('application/json; charset=utf-8')
    expect(parsed.body).toBe(
      JSON.stringify({
        code: 'GW001',
        details: null,
        hint: null,
        message: 'Request header fields too large',
      }),
    )
    expect(upstream.requests.length).toBe(before)
  })

  it('an 8 KB garbage token costs one failed parse, not a hang', async () => {
    const garbage = `${'A'.repeat(4000)}.${'B'.repeat(4000)}.${'C'.repeat(400)}`
    const started = performance.now()
    const res = await get(`${gateway.url}/items`, { authorization: `Bearer ${garbage}` })
    expect(res.status).toBe(401)
    expect(performance.now() - started).toBeLessThan(1000)
  })
})
