// Tests of the PostgREST stand-in's auth step: PostgREST's rules and answers, checked against real PostgreSQL.
import { CompactSign, exportJWK, generateKeyPair } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'

const SECRET = 'stand-in-test-secret-with-at-least-32-chars'
const NOW = 1_900_000_000

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** An HS256 token over exactly these claims (no library defaults or validation). */
async function hs256(
  claims: unknown,
  secret = SECRET,
  header: Record<string, unknown> = {},
): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...header })
    .sign(new TextEncoder().encode(secret))
}

async function call(
  standIn: StandIn,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: Headers; body: string }> {
  const res = await fetch(standIn.url + path, init)
  return { status: res.status, headers: res.headers, body: await res.text() }
}

function bearer(token: string): { method: string; headers: Record<string, string> } {
  return { method: 'POST', headers: { authorization: `Bearer ${token}` } }
}

const alice = {
  sub: DEMO_USERS.alice.id,
  role: 'authenticated',
  aud: 'authenticated',
  exp: NOW + 3600,
  iat: NOW,
}

describe('PostgREST stand-in: auth', () => {
  let db: TestDatabase
  let standIn: StandIn
  let noAnon: StandIn

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    standIn = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: SECRET,
      jwtAud: 'authenticated',
      anonRole: 'anon',
      now: () => NOW,
    })
    noAnon = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: SECRET,
      anonRole: null,
      now: () => NOW,
    })
  })
  afterAll(async () => {
    await standIn?.close()
    await noAnon?.close()
    await db?.drop()
  })

  test('anonymous: runs as db-anon-role under RLS, with claims {"role":"anon"}', async () => {
    const notes = await call(standIn, '/notes?select=id,title&order=id')
    expect(notes.status).toBe(200)
    expect(notes.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(JSON.parse(notes.body)).toEqual([
      { id: 1, title: 'Welcome' },
      { id: 5, title: 'Carol public' },
    ])
    const who = await call(standIn, '/rpc/whoami', { method: 'POST' })
    expect(JSON.parse(who.body)).toEqual({ role: 'anon', uid: null, claims: { role: 'anon' } })
  })

  test('a non-Bearer scheme is ignored: the request is anonymous', async () => {
    const who = await call(standIn, '/rpc/whoami', {
      method: 'POST',
      headers: { authorization: 'Basic dXNlcjpwdw==' },
    })
    expect(who.status).toBe(200)
    expect(JSON.parse(who.body)).toMatchObject({ role: 'anon' })
  })

  test('a valid HS256 token sets the role and request.jwt.claims; Bearer is case-insensitive', async () => {
    const token = await hs256(alice)
    const who = await call(standIn, '/rpc/whoami', {
      method: 'POST',
      headers: { authorization: `bEaReR ${token}` },
    })
    expect(who.status).toBe(200)
    expect(JSON.parse(who.body)).toEqual({ role: 'authenticated', uid: DEMO_USERS.alice.id, claims: alice })
    const notes = await call(standIn, '/notes?select=id&order=id', {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(JSON.parse(notes.body)).toEqual([{ id: 1 }, { id: 2 }, { id: 5 }])
  })

  test('request.jwt.claims carries the effective role, overwriting the claim', async () => {
    const token = await hs256({ sub: DEMO_USERS.alice.id, role: 'manager', exp: NOW + 60 })
    const who = await call(standIn, '/rpc/whoami', bearer(token))
    expect(JSON.parse(who.body)).toEqual({
      role: 'manager',
      uid: DEMO_USERS.alice.id,
      claims: { sub: DEMO_USERS.alice.id, role: 'manager', exp: NOW + 60 },
    })
  })

  test('expired by 31 s: 401 PGRST303 with PostgREST body and headers', async () => {
    const res = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, exp: NOW - 31 })))
    expect(res.status).toBe(401)
    expect(res.body).toBe('{"code":"PGRST303","details":null,"hint":null,"message":"JWT expired"}')
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="JWT expired"',
    )
    expect(res.headers.get('proxy-status')).toBe('PostgREST; error=PGRST303')
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8')
  })

  test('expired by 30 s passes (the fixed skew); nbf and iat 30 s ahead pass, 31 s do not', async () => {
    expect(
      (await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, exp: NOW - 30 })))).status,
    ).toBe(200)
    expect(
      (await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, nbf: NOW + 30 })))).status,
    ).toBe(200)
    const nbf = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, nbf: NOW + 31 })))
    expect(nbf.body).toBe('{"code":"PGRST303","details":null,"hint":null,"message":"JWT not yet valid"}')
    const iat = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, iat: NOW + 31 })))
    expect(iat.body).toBe('{"code":"PGRST303","details":null,"hint":null,"message":"JWT issued at future"}')
  })

  test('time claims must be numbers; null counts as absent', async () => {
    const exp = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, exp: '1900000000' })))
    expect(exp.status).toBe(401)
    expect(exp.body).toBe(
      '{"code":"PGRST303","details":null,"hint":null,"message":"The JWT \'exp\' claim must be a number"}',
    )
    expect((await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, exp: null })))).status).toBe(
      200,
    )
  })

  test('aud: a mismatch is refused, a wrong type too, an empty array passes', async () => {
    const wrong = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, aud: 'other' })))
    expect(wrong.body).toBe('{"code":"PGRST303","details":null,"hint":null,"message":"JWT not in audience"}')
    const listed = await call(
      standIn,
      '/rpc/whoami',
      bearer(await hs256({ ...alice, aud: ['x', 'authenticated'] })),
    )
    expect(listed.status).toBe(200)
    expect((await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, aud: [] })))).status).toBe(200)
    const typed = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, aud: 5 })))
    expect(typed.body).toBe(
      '{"code":"PGRST303","details":null,"hint":null,"message":"The JWT \'aud\' claim must be a string or an array of strings"}',
    )
  })

  test('wrong key: 401 PGRST301 "No suitable key or wrong key type"', async () => {
    const res = await call(
      standIn,
      '/rpc/whoami',
      bearer(await hs256(alice, 'another-secret-that-is-also-32-chars-long')),
    )
    expect(res.status).toBe(401)
    expect(res.body).toBe(
      '{"code":"PGRST301","details":"None of the keys was able to decode the JWT","hint":null,"message":"No suitable key or wrong key type"}',
    )
    expect(res.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="No suitable key or wrong key type"',
    )
  })

  test('malformed tokens: empty Bearer, wrong part count, unsupported alg, garbage header', async () => {
    const empty = await call(standIn, '/rpc/whoami', {
      method: 'POST',
      headers: { authorization: 'Bearer ' },
    })
    expect(empty.status).toBe(401)
    expect(empty.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"Empty JWT is sent in Authorization header"}',
    )
    const parts = await call(standIn, '/rpc/whoami', bearer('a.b'))
    expect(parts.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"Expected 3 parts in JWT; got 2"}',
    )
    const none = await call(standIn, '/rpc/whoami', bearer(`${b64({ alg: 'none' })}.${b64(alice)}.`))
    expect(none.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"Wrong or unsupported encoding algorithm"}',
    )
    const garbage = await call(standIn, '/rpc/whoami', bearer('!!!.e30.sig'))
    expect(garbage.body).toBe(
      '{"code":"PGRST301","details":null,"hint":null,"message":"JWT cryptographic operation failed"}',
    )
  })

  test('a payload that is not a JSON object: 401 PGRST303 "Parsing claims failed"', async () => {
    const res = await call(standIn, '/rpc/whoami', bearer(await hs256([1, 2])))
    expect(res.body).toBe('{"code":"PGRST303","details":null,"hint":null,"message":"Parsing claims failed"}')
  })

  test('no role claim: falls back to db-anon-role', async () => {
    const { role: _, ...noRole } = alice
    const who = await call(standIn, '/rpc/whoami', bearer(await hs256(noRole)))
    expect(who.status).toBe(200)
    expect(JSON.parse(who.body)).toEqual({
      role: 'anon',
      uid: DEMO_USERS.alice.id,
      claims: { ...noRole, role: 'anon' },
    })
  })

  test('no db-anon-role: anonymous and role-less tokens get 401 PGRST302', async () => {
    const anonymous = await call(noAnon, '/rpc/whoami', { method: 'POST' })
    expect(anonymous.status).toBe(401)
    expect(anonymous.body).toBe(
      '{"code":"PGRST302","details":null,"hint":null,"message":"Anonymous access is disabled"}',
    )
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer')
    const roleless = await call(noAnon, '/rpc/whoami', bearer(await hs256({ sub: DEMO_USERS.alice.id })))
    expect(roleless.status).toBe(401)
    expect(roleless.body).toBe(anonymous.body)
  })

  test('a role that does not exist: 401 22023 as PostgreSQL reports it', async () => {
    const res = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, role: 'nobody_here' })))
    expect(res.status).toBe(401)
    expect(res.body).toBe(
      '{"code":"22023","details":null,"hint":null,"message":"role \\"nobody_here\\" does not exist"}',
    )
    expect(res.headers.get('www-authenticate')).toBe('Bearer')
    expect(res.headers.get('proxy-status')).toBe('PostgREST; error=22023')
  })

  test('a role authenticator may not take: 403 42501 for a signed-in caller', async () => {
    const res = await call(standIn, '/rpc/whoami', bearer(await hs256({ ...alice, role: 'postgres' })))
    expect(res.status).toBe(403)
    expect(res.body).toBe(
      '{"code":"42501","details":null,"hint":null,"message":"permission denied to set role \\"postgres\\""}',
    )
  })

  test('JWKS: an ES256 key chosen by kid; a kid no key carries is PGRST301', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'gateway-1', alg: 'ES256', use: 'sig' }
    const jwks = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: JSON.stringify({
        keys: [{ kty: 'oct', k: Buffer.from(SECRET).toString('base64url') }, jwk],
      }),
      anonRole: 'anon',
      now: () => NOW,
    })
    try {
      const sign = (kid: string) =>
        new CompactSign(new TextEncoder().encode(JSON.stringify(alice)))
          .setProtectedHeader({ alg: 'ES256', kid })
          .sign(privateKey)
      const ok = await call(jwks, '/rpc/whoami', bearer(await sign('gateway-1')))
      expect(ok.status).toBe(200)
      expect(JSON.parse(ok.body)).toMatchObject({ role: 'authenticated' })
      const unknown = await call(jwks, '/rpc/whoami', bearer(await sign('gateway-2')))
      expect(unknown.body).toBe(
        '{"code":"PGRST301","details":"No suitable key was found to decode the JWT","hint":null,"message":"No suitable key or wrong key type"}',
      )
      expect((await call(jwks, '/rpc/whoami', bearer(await hs256(alice)))).status).toBe(200)
    } finally {
      await jwks.close()
    }
  })

  test('a custom role claim key reads the role there (.app_metadata.role)', async () => {
    const custom = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: SECRET,
      anonRole: 'anon',
      roleClaimKey: '.app_metadata.role',
      now: () => NOW,
    })
    try {
      const token = await hs256({ ...alice, app_metadata: { role: 'manager' } })
      expect(JSON.parse((await call(custom, '/rpc/whoami', bearer(token))).body)).toMatchObject({
        role: 'manager',
      })
    } finally {
      await custom.close()
    }
  })

  test('no jwt-secret: a token is 500 PGRST300, anonymous still works', async () => {
    const keyless = await startPostgrestStandIn({
      dbUrl: db.authenticatorUrl,
      jwtSecret: null,
      anonRole: 'anon',
    })
    try {
      const res = await call(keyless, '/rpc/whoami', bearer(await hs256(alice)))
      expect(res.status).toBe(500)
      expect(res.body).toBe(
        '{"code":"PGRST300","details":null,"hint":null,"message":"Server lacks JWT secret"}',
      )
      expect((await call(keyless, '/rpc/whoami', { method: 'POST' })).status).toBe(200)
    } finally {
      await keyless.close()
    }
  })

  test('the request log records the first Authorization header as received', async () => {
    const token = await hs256(alice)
    await call(standIn, '/rpc/whoami', bearer(token))
    const last = standIn.requests[standIn.requests.length - 1]!
    expect(last).toMatchObject({ method: 'POST', path: '/rpc/whoami', authorization: `Bearer ${token}` })
  })
})
