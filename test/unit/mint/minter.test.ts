import { createHmac, generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import { decodeProtectedHeader, importJWK, jwtVerify } from 'jose'
import { describe, expect, it } from 'vitest'
import { Hmac } from '../../../src/auth/hmac.js'
import type { VerifiedToken } from '../../../src/auth/types.js'
import type { MintConfig } from '../../../src/config/types.js'
import { createMinter, importSigningKey } from '../../../src/mint/index.js'
import { createMetrics } from '../../../src/observability/metrics.js'

const SECRET = 'upstream-secret-upstream-secret-0123456789'
const NOW = 1_800_000_000

function mintConfig(overrides: Partial<MintConfig> = {}): MintConfig {
  return { claimsAllowed: null, ttlSeconds: 3600, warnBytes: 4096, kid: null, ...overrides }
}

function verified(claims: Record<string, unknown>): VerifiedToken {
  return {
    token: 'inbound',
    claims,
    exp: typeof claims['exp'] === 'number' ? claims['exp'] : null,
    nbf: null,
    iat: typeof claims['iat'] === 'number' ? claims['iat'] : null,
    sub: typeof claims['sub'] === 'string' ? claims['sub'] : null,
    sessionId: null,
    role: typeof claims['role'] === 'string' ? claims['role'] : null,
    kid: null,
    alg: 'HS256',
  }
}

const token = () =>
  verified({
    sub: 'user-1',
    role: 'authenticated',
    iat: NOW - 10,
    exp: NOW + 600,
    app_metadata: { role: 'staff' },
    user_metadata: { name: 'x' },
  })

async function hsMinter(overrides: Partial<MintConfig> = {}) {
  const key = await importSigningKey(SECRET, { isBase64: false, kid: null })
  const metrics = createMetrics({ defaultMetrics: false })
  return { minter: createMinter({ key, mint: mintConfig(overrides), metrics, now: () => NOW }), metrics }
}

async function payloadOf(authorization: string) {
  const { payload } = await jwtVerify(authorization.slice(7), new TextEncoder().encode(SECRET), {
    currentDate: new Date(NOW * 1000),
  })
  return payload
}

describe('minter', () => {
  it('signs HS256 tokens PostgREST can verify, with fresh app_metadata and the mapped role', async () => {
    const { minter } = await hsMinter()
    const auth = minter.authorization(
      token(),
      { appMetadata: { role: 'manager', plan: 'pro' }, role: null },
      'manager',
      null,
    )
    expect(auth.startsWith('Bearer ')).toBe(true)
    expect(decodeProtectedHeader(auth.slice(7))).toEqual({ alg: 'HS256', typ: 'JWT' })
    expect(await payloadOf(auth)).toEqual({
      sub: 'user-1',
      role: 'manager',
      iat: NOW - 10,
      exp: NOW + 600,
      app_metadata: { role: 'manager', plan: 'pro' },
      user_metadata: { name: 'x' },
    })
  })

  it('reuses the minted token for the same inputs and signs again when the user record changes', async () => {
    const { minter, metrics } = await hsMinter()
    const t = token()
    const user = { appMetadata: { role: 'staff' }, role: null }
    const first = minter.authorization(t, user, 'staff', null)
    expect(minter.authorization(t, user, 'staff', null)).toBe(first)
    const changed = { appMetadata: { role: 'manager' }, role: null }
    const second = minter.authorization(t, changed, 'manager', null)
    expect(second).not.toBe(first)
    expect((await payloadOf(second))['role']).toBe('manager')
    const counts = Object.fromEntries(
      (await metrics.minted.get()).values.map((v) => [v.labels['event'], v.value]),
    )
    expect(counts).toEqual({ signed: 2, reused: 1 })
  })

  it('hands back the last decision (role and token) while the token, user record and hook result stay the same', async () => {
    const { minter } = await hsMinter()
    const t = token()
    const user = { appMetadata: { role: 'staff' }, role: null }
    expect(minter.reuse(t, user, null)).toBeUndefined()
    const auth = minter.authorization(t, user, 'staff', null)
    expect(minter.reuse(t, user, null)).toMatchObject({ role: 'staff', authorization: auth })
    expect(minter.reuse(t, { appMetadata: { role: 'staff' }, role: null }, null)).toBeUndefined()
    expect(minter.reuse(t, user, { sub: 'user-1' })).toBeUndefined()
  })

  it('is deterministic for HS256: the same inbound claims give the same token after a cache loss', async () => {
    const { minter } = await hsMinter()
    const user = { appMetadata: { role: 'staff' }, role: null }
    expect(minter.authorization(token(), user, 'staff', null)).toBe(
      minter.authorization(token(), user, 'staff', null),
    )
  })

  it('never sets exp later than the inbound token, and gives tokens without exp the configured lifetime', async () => {
    const { minter } = await hsMinter({ ttlSeconds: 120 })
    const hook = { sub: 'user-1', role: 'x', exp: NOW + 99_999 }
    expect((await payloadOf(minter.authorization(token(), null, 'staff', hook)))['exp']).toBe(NOW + 600)
    const noExp = verified({ sub: 'user-2', role: 'authenticated' })
    expect((await payloadOf(minter.authorization(noExp, null, 'staff', null)))['exp']).toBe(NOW + 120)
  })

  it('forwards only the allowed claims plus role and exp (minimal JWT)', async () => {
    const { minter } = await hsMinter({ claimsAllowed: ['sub', 'app_metadata'] })
    const payload = await payloadOf(
      minter.authorization(token(), { appMetadata: { role: 'staff' }, role: null }, 'staff', null),
    )
    expect(payload).toEqual({ sub: 'user-1', app_metadata: { role: 'staff' }, role: 'staff', exp: NOW + 600 })
  })

  it('counts and reports tokens above the warning size', async () => {
    const key = await importSigningKey(SECRET, { isBase64: false, kid: null })
    const metrics = createMetrics({ defaultMetrics: false })
    const sizes: number[] = []
    const minter = createMinter({
      key,
      mint: mintConfig({ warnBytes: 100 }),
      metrics,
      now: () => NOW,
      onOversize: (b) => sizes.push(b),
    })
    const auth = minter.authorization(token(), null, 'staff', null)
    expect(sizes).toEqual([auth.length - 7])
    expect((await metrics.mintedOversize.get()).values[0]?.value).toBe(1)
  })

  it('refuses an HS256 secret under 32 characters', async () => {
    await expect(importSigningKey('short', { isBase64: false, kid: null })).rejects.toThrow(
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) must be at least 32 characters',
    )
  })

  it('accepts a base64-encoded secret', async () => {
    const key = await importSigningKey(Buffer.from(SECRET).toString('base64'), { isBase64: true, kid: null })
    const minter = createMinter({ key, mint: mintConfig(), now: () => NOW })
    expect((await payloadOf(minter.authorization(token(), null, 'staff', null)))['sub']).toBe('user-1')
  })

  for (const [type, options, alg] of [
    ['ec', { namedCurve: 'P-256' }, 'ES256'],
    ['rsa', { modulusLength: 2048 }, 'RS256'],
    ['ed25519', {}, 'EdDSA'],
  ] as const) {
    it(`signs with a private ${alg} JWK whose public half (with kid) verifies the token`, async () => {
      const { privateKey } = generateKeyPairSync(type as 'ec', options as { namedCurve: string })
      const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `gw-${alg}` }
      const key = await importSigningKey(JSON.stringify(jwk), { isBase64: false, kid: null })
      expect(key.alg).toBe(alg)
      expect(key.publicJwk).toMatchObject({ kid: `gw-${alg}`, alg, use: 'sig' })
      expect(key.publicJwk).not.toHaveProperty('d')
      const minter = createMinter({ key, mint: mintConfig(), now: () => NOW })
      const jwt = minter.authorization(token(), null, 'staff', null).slice(7)
      expect(decodeProtectedHeader(jwt)).toEqual({ alg, typ: 'JWT', kid: `gw-${alg}` })
      const publicKey = await importJWK(key.publicJwk!, alg)
      const { payload } = await jwtVerify(jwt, publicKey, { currentDate: new Date(NOW * 1000) })
      expect(payload['role']).toBe('staff')
    })
  }

  it('derives a kid from the RFC 7638 thumbprint when the JWK has none', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    const key = await importSigningKey(JSON.stringify(privateKey.export({ format: 'jwk' })), {
      isBase64: false,
      kid: null,
    })
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('refuses a public JWK as the signing key', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await expect(
      importSigningKey(JSON.stringify(publicKey.export({ format: 'jwk' })), { isBase64: false, kid: null }),
    ).rejects.toThrow(
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) must be a private JWK (it has no "d")',
    )
  })

  describe('payload bytes', () => {
    /** The payload text of a minted token, exactly as signed. */
    const payloadText = (authorization: string) =>
      Buffer.from(authorization.slice(7).split('.')[1]!, 'base64url').toString('utf8')

    const claimName = fc.oneof(
      fc.constantFrom(
        'sub',
        'role',
        'exp',
        'app_metadata',
        'iat',
        'email',
        '__proto__',
        '0',
        '17',
        'x y',
        'é',
      ),
      fc.string({ maxLength: 6 }),
    )
    const claimValue = fc.jsonValue({ maxDepth: 2 })
    const claimsArb = fc
      .dictionary(claimName, claimValue, { maxKeys: 12 })
      .map((d) => JSON.parse(JSON.stringify(d)))
    const appMetadata = fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), {
      maxKeys: 4,
    })

    it('is JSON.stringify of claimsFor, byte for byte: claim order, integer keys, __proto__, unicode, claim lists', async () => {
      const key = await importSigningKey(SECRET, { isBase64: false, kid: null })
      fc.assert(
        fc.property(
          claimsArb,
          fc.option(appMetadata, { nil: null }),
          fc.string({ minLength: 1, maxLength: 8 }),
          fc.option(fc.constantFrom(['sub', 'app_metadata'], ['email'], []), { nil: null }),
          fc.boolean(),
          (claims, app, role, claimsAllowed, asHook) => {
            const minter = createMinter({ key, mint: mintConfig({ claimsAllowed }), now: () => NOW })
            const t = verified({ ...claims, exp: NOW + 600 })
            const user = app === null ? null : { appMetadata: app, role: null }
            const hook = asHook ? claims : null
            const auth = minter.authorization(t, user, role, hook)
            expect(payloadText(auth)).toBe(JSON.stringify(minter.claimsFor(t, user, role, hook)))
          },
        ),
        { numRuns: 300 },
      )
    })

    it('signs again for a new user record with the same bytes a fresh minter would give', async () => {
      const key = await importSigningKey(SECRET, { isBase64: false, kid: null })
      fc.assert(
        fc.property(
          claimsArb,
          appMetadata,
          appMetadata,
          fc.string({ maxLength: 8 }),
          (claims, a, b, role) => {
            const minter = createMinter({ key, mint: mintConfig(), now: () => NOW })
            const t = verified({ ...claims, exp: NOW + 600 })
            minter.authorization(t, { appMetadata: a, role: null }, 'first', null)
            const second = minter.authorization(t, { appMetadata: b, role: null }, role, null)
            const fresh = createMinter({ key, mint: mintConfig(), now: () => NOW })
            expect(second).toBe(
              fresh.authorization(
                verified({ ...claims, exp: NOW + 600 }),
                { appMetadata: b, role: null },
                role,
                null,
              ),
            )
          },
        ),
        { numRuns: 300 },
      )
    })

    it('never hands out a decision another minter (an earlier configuration) made for the token', async () => {
      const { minter } = await hsMinter()
      const other = await hsMinter({ claimsAllowed: ['sub'] })
      const t = token()
      const user = { appMetadata: { role: 'staff' }, role: null }
      const first = minter.authorization(t, user, 'staff', null)
      expect(other.minter.reuse(t, user, null)).toBeUndefined()
      const second = other.minter.authorization(t, user, 'staff', null)
      expect(second).not.toBe(first)
      expect(await payloadOf(second)).toEqual({ sub: 'user-1', role: 'staff', exp: NOW + 600 })
    })
  })

  it('prepares HMAC once per key with the same result as createHmac (short and long keys, SHA-2 sizes)', () => {
    for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
      for (const key of [Buffer.from(SECRET), Buffer.alloc(200, 7)]) {
        const hmac = new Hmac(hash, key)
        for (const text of ['', 'a.b', 'x'.repeat(5000)]) {
          const expected = createHmac(hash, key).update(text, 'latin1').digest()
          expect(hmac.latin1(`${text}tail`, text.length, 'base64url')).toBe(expected.toString('base64url'))
          expect(hmac.latin1(text, text.length, 'buffer')).toEqual(expected)
          expect(hmac.bytes(Buffer.from(`..${text}`, 'latin1'), 2, text.length + 2, 'base64url')).toBe(
            createHmac(hash, key).update(text, 'latin1').digest('base64url'),
          )
        }
      }
    }
  })
})
