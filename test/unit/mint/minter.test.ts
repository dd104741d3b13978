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
  return {
    claimsAllowed: null,
    ttlSeconds: 3600,
    warnBytes: 4096,
    kid: null,
    cacheMaxEntries: 10_000,
    ...overrides,
  }
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

/** A verified token as the verifier gives it: the claims are its payload text, parsed. */
function fromPayload(text: string): VerifiedToken {
  const claims = Object.setPrototypeOf(JSON.parse(text), null) as Record<string, unknown>
  const header = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')
  return {
    ...verified(claims),
    token: `${header}.${Buffer.from(text).toString('base64url')}.c2lnbmF0dXJl`,
    claims,
  }
}

async function mintedCounts(metrics: ReturnType<typeof createMetrics>) {
  return Object.fromEntries((await metrics.minted.get()).values.map((v) => [v.labels['event'], v.value]))
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

    it('is JSON.stringify of claimsFor when copied from the inbound payload text, canonical or not', async () => {
      const key = await importSigningKey(SECRET, { isBase64: false, kid: null })
      // The text as Supabase Auth writes it (JSON.stringify), or spaced out, or with `\/` escapes:
      // only the first is copied, the others are parsed and serialised; the bytes must not differ.
      const layouts = [
        (c: object) => JSON.stringify(c),
        (c: object) => JSON.stringify(c, null, 1),
        (c: object) => JSON.stringify(c).replaceAll('/', '\\/'),
      ]
      fc.assert(
        fc.property(
          claimsArb,
          fc.option(appMetadata, { nil: null }),
          fc.string({ minLength: 1, maxLength: 8 }),
          fc.constantFrom(0, 1, 2),
          fc.option(fc.integer({ min: -1, max: NOW + 10_000 }), { nil: null }),
          (claims, app, role, layout, exp) => {
            const minter = createMinter({ key, mint: mintConfig(), now: () => NOW })
            const t = fromPayload(layouts[layout]!(exp === null ? claims : { ...claims, exp }))
            const user = app === null ? null : { appMetadata: app, role: null }
            const auth = minter.authorization(t, user, role, null)
            expect(payloadText(auth)).toBe(JSON.stringify(minter.claimsFor(t, user, role, null)))
            // Signing again for another user record (the splice path) keeps it exact too.
            const other = { appMetadata: { role: role }, role: null }
            const again = minter.authorization(t, other, 'again', null)
            expect(payloadText(again)).toBe(JSON.stringify(minter.claimsFor(t, other, 'again', null)))
          },
        ),
        { numRuns: 400 },
      )
    })

    it('copies only payload texts JSON.stringify would write back as they are', async () => {
      const { minter } = await hsMinter()
      const user = { appMetadata: { role: 'staff' }, role: null }
      const texts = [
        '{"sub":"u","exp":1800000600,"role":"x","app_metadata":{"a":1}}',
        '{"sub":"u","sub":"v","exp":1800000600}',
        '{"sub":"u","meta":{"a":1,"b":{"a":2},"a":3}}',
        '{"sub":"u","meta":{"b":1,"2":2,"1":3}}',
        '{"3":"x","sub":"u","1":"y"}',
        '{"__proto__":{"role":"service_role"},"sub":"u"}',
        '{"sub":"u","meta":{"__proto__":{"x":1}}}',
        '{"sub":"u","n":1.0}',
        '{"sub":"u","n":1.5,"m":[1e3]}',
        '{"sub":"u","z":-0}',
        '{"sub":"u","big":9007199254740993}',
        '{"sub":"u","big":-123456789012345,"neg":-12,"zero":0}',
        '{"sub":"u","exp":1800000600.0}',
        '{"sub":"u","exp":null}',
        '{"sub":"u","exp":1700000000}',
        '{"sub":"\\u0041\\u00e9\\ud83d\\ude00","t":"a\\/b\\n\\"\\\\","c":"\\u001f\\t"}',
        '{"sub":"é😀","t":"\\u2028","r":"\u2028","lone":"\\ud800"}',
        '{ "sub" : "u" ,"list":[ 1,2 ] }',
        '{"sub":"u","nested":[[{"a":[true,false,null]}],{}],"e":[],"o":{}}',
        '{}',
      ]
      for (const text of texts) {
        const t = fromPayload(text)
        const auth = minter.authorization(t, user, 'staff', null)
        expect(payloadText(auth), text).toBe(JSON.stringify(minter.claimsFor(t, user, 'staff', null)))
        const without = fromPayload(text)
        const anonymous = minter.authorization(without, null, 'anon', null)
        expect(payloadText(anonymous), text).toBe(
          JSON.stringify(minter.claimsFor(without, null, 'anon', null)),
        )
      }
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

  describe('kept tokens (mint.cacheMaxEntries)', () => {
    const user = { appMetadata: { role: 'staff' }, role: null }
    const tokens = (count: number) =>
      Array.from({ length: count }, (_, n) =>
        fromPayload(JSON.stringify({ sub: `user-${n}`, role: 'authenticated', exp: NOW + 600, n })),
      )
    const kept = (list: VerifiedToken[]) => list.filter((t) => t.minted !== undefined).length

    it('keeps at most cacheMaxEntries minted tokens', async () => {
      for (const bound of [1, 2, 5, 8]) {
        const { minter } = await hsMinter({ cacheMaxEntries: bound })
        const list = tokens(40)
        for (const t of list) {
          minter.authorization(t, user, 'staff', null)
          expect(kept(list)).toBeLessThanOrEqual(bound)
        }
        // Half the bound or more is still kept after a run of new tokens.
        expect(kept(list)).toBeGreaterThanOrEqual(Math.max(1, Math.floor(bound / 2)))
      }
    })

    it('keeps recently used tokens, drops the others and signs a dropped one again as a fresh minter would', async () => {
      const { minter, metrics } = await hsMinter({ cacheMaxEntries: 4 })
      const [a, b, c, d, e] = tokens(5) as [
        VerifiedToken,
        VerifiedToken,
        VerifiedToken,
        VerifiedToken,
        VerifiedToken,
      ]
      const first = minter.authorization(a, user, 'staff', null)
      const dropped = minter.authorization(b, user, 'staff', null)
      minter.authorization(c, user, 'staff', null)
      // a is used again (the decision path), b is not: a stays, b goes when the generations turn over.
      expect(minter.reuse(a, user, null)?.authorization).toBe(first)
      minter.authorization(d, user, 'staff', null)
      minter.authorization(e, user, 'staff', null)
      expect(b.minted).toBeUndefined()
      expect(minter.reuse(b, user, null)).toBeUndefined()
      expect(minter.reuse(a, user, null)?.authorization).toBe(first)
      expect(minter.authorization(a, user, 'staff', null)).toBe(first)
      expect(await mintedCounts(metrics)).toEqual({ signed: 5, reused: 3 })

      const again = minter.authorization(b, user, 'staff', null)
      expect(again).toBe(dropped)
      const fresh = (await hsMinter()).minter
      expect(again).toBe(fresh.authorization(tokens(5)[1]!, user, 'staff', null))
      expect(minter.authorization(b, user, 'staff', null)).toBe(again)
      expect(await mintedCounts(metrics)).toEqual({ signed: 6, reused: 4 })
    })

    it('signs again after a claims change whether or not the token was kept', async () => {
      const { minter } = await hsMinter({ cacheMaxEntries: 2 })
      const list = tokens(6)
      for (const t of list) minter.authorization(t, user, 'staff', null)
      const changed = { appMetadata: { role: 'manager' }, role: null }
      for (const t of list) {
        expect(minter.reuse(t, changed, null)).toBeUndefined()
        expect((await payloadOf(minter.authorization(t, changed, 'manager', null)))['app_metadata']).toEqual({
          role: 'manager',
        })
      }
    })

    it('keeps none with cacheMaxEntries 0: every request signs', async () => {
      const { minter, metrics } = await hsMinter({ cacheMaxEntries: 0 })
      const [t] = tokens(1) as [VerifiedToken]
      const auth = minter.authorization(t, user, 'staff', null)
      expect(t.minted).toBeUndefined()
      expect(minter.reuse(t, user, null)).toBeUndefined()
      expect(minter.authorization(t, user, 'staff', null)).toBe(auth)
      expect(await mintedCounts(metrics)).toEqual({ signed: 2 })
    })

    it('never reuses a slot a replaced minter (a reload) kept', async () => {
      const { minter } = await hsMinter({ cacheMaxEntries: 4 })
      const next = (await hsMinter({ cacheMaxEntries: 4, claimsAllowed: ['sub'] })).minter
      const list = tokens(3)
      for (const t of list) minter.authorization(t, user, 'staff', null)
      for (const t of list) {
        expect(next.reuse(t, user, null)).toBeUndefined()
        expect(await payloadOf(next.authorization(t, user, 'staff', null))).toEqual({
          sub: (t.claims as { sub: string }).sub,
          role: 'staff',
          exp: NOW + 600,
        })
      }
    })
  })

  it('prepares HMAC once per key with the same result as createHmac (short and long keys, SHA-2 sizes)', () => {
    for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
      for (const key of [
        Buffer.from(SECRET),
        Buffer.alloc(64, 9),
        Buffer.alloc(128, 8),
        Buffer.alloc(200, 7),
      ]) {
        const hmac = new Hmac(hash, key)
        for (const text of ['', 'a.b', 'x'.repeat(5000), '\u00ff\u0080\u0000'.repeat(40), 'y'.repeat(300)]) {
          const expected = createHmac(hash, key).update(text, 'latin1').digest('base64url')
          expect(hmac.latin1(`${text}tail`, text.length)).toBe(expected)
          expect(hmac.bytes(Buffer.from(`..${text}`, 'latin1'), 2, text.length + 2)).toBe(expected)
        }
      }
    }
  })

  it('signs a message written after a fixed prefix and reads the whole JWS out as one string', () => {
    for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
      for (const key of [Buffer.from(SECRET), Buffer.alloc(200, 7)]) {
        const prefix = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
        const hmac = new Hmac(hash, key).withPrefix(prefix)
        // Longer than the buffer it starts with: the prefix must survive the buffer growing.
        for (const text of ['', 'e30', 'x'.repeat(5000), 'y'.repeat(300), 'e30']) {
          const mac = createHmac(hash, key)
            .update(prefix + text, 'latin1')
            .digest('base64url')
          hmac.scratch(text.length).write(text, hmac.messageStart, 'latin1')
          expect(hmac.signedText(text.length, 'Bearer ')).toBe(`Bearer ${prefix}${text}.${mac}`)
          // The pad bytes lent to `Bearer ` are back: the next MAC is still right.
          expect(hmac.latin1(`${text}tail`, text.length)).toBe(mac)
        }
      }
    }
  })
})
