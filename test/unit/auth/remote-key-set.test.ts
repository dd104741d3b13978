import type { JsonWebKey } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { parseKeySet } from '../../../src/auth/key-set.js'
import {
  combineKeySets,
  createRemoteKeySet,
  maxAgeOf,
  type RemoteKeySet,
} from '../../../src/auth/remote-key-set.js'
import type { VerifiedToken } from '../../../src/auth/types.js'
import { createVerifier } from '../../../src/auth/verifier.js'
import { createMetrics } from '../../../src/observability/metrics.js'
import { generateKeyPairJwk, signHs, signWithKey } from '../../support/tokens.js'

interface JwksServer {
  url: string
  keys: JsonWebKey[]
  status: number
  cacheControl: string | null
  delayMs: number
  requests: number
  close(): Promise<void>
}

async function startJwksServer(keys: JsonWebKey[]): Promise<JwksServer> {
  const state: Omit<JwksServer, 'close' | 'url'> = {
    keys,
    status: 200,
    cacheControl: null,
    delayMs: 0,
    requests: 0,
  }
  const server: Server = createServer((_req, res) => {
    state.requests++
    setTimeout(() => {
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (state.cacheControl !== null) headers['cache-control'] = state.cacheControl
      res.writeHead(state.status, headers)
      res.end(state.status === 200 ? JSON.stringify({ keys: state.keys }) : 'oops')
    }, state.delayMs)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  })
}

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

async function setup(keys: JsonWebKey[], options: { cooldownSeconds?: number; maxAgeSeconds?: number } = {}) {
  const server = await startJwksServer(keys)
  const metrics = createMetrics({ defaultMetrics: false })
  const remote: RemoteKeySet = createRemoteKeySet({
    url: server.url,
    cooldownSeconds: options.cooldownSeconds ?? 0,
    maxAgeSeconds: options.maxAgeSeconds ?? 600,
    timeoutMs: 2000,
    metrics,
  })
  cleanups.push(
    () => remote.close(),
    () => server.close(),
  )
  const verifier = createVerifier({
    keys: remote,
    aud: null,
    iss: null,
    clockSkewSeconds: 30,
    cacheMaxEntries: 100,
  })
  return { server, remote, verifier, metrics }
}

/** The failure kind of a verification that may throw synchronously or reject. */
async function kindOf(run: () => unknown): Promise<string> {
  try {
    await run()
  } catch (err) {
    return (err as { kind: string }).kind
  }
  return 'ok'
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('maxAgeOf', () => {
  it('reads max-age and treats no-store / no-cache as 0', () => {
    expect(maxAgeOf('public, max-age=600')).toBe(600)
    expect(maxAgeOf('max-age="30"')).toBe(30)
    expect(maxAgeOf('no-store')).toBe(0)
    expect(maxAgeOf(undefined)).toBeNull()
    expect(maxAgeOf('public')).toBeNull()
    expect(maxAgeOf(['public', 'max-age=5'])).toBe(5)
  })
})

describe('createRemoteKeySet', () => {
  it('is not ready until the first fetch and then verifies tokens', async () => {
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const { remote, verifier, server, metrics } = await setup([a.publicJwk])
    expect(remote.ready).toBe(false)
    const token = signWithKey({ sub: 'u' }, a.privateKey, 'ES256', { kid: 'a' })
    // A request arriving before the first fetch waits for it.
    const verified = await verifier.verify(token)
    expect(verified.sub).toBe('u')
    expect(remote.ready).toBe(true)
    expect(remote.size).toBe(1)
    expect(server.requests).toBe(1)
    // Cached: synchronous now.
    expect(verifier.verify(token)).toBe(verified)
    expect((await metrics.keysetKeys.get()).values[0]!.value).toBe(1)
  })

  it('answers KeysUnavailable (503) when no set could be loaded', async () => {
    const { server, verifier, remote } = await setup([])
    server.status = 500
    await remote.loaded
    expect(remote.ready).toBe(false)
    const token = signHs({}, 'x'.repeat(40))
    expect(await kindOf(() => verifier.verify(token))).toBe('KeysUnavailable')
  })

  it('refetches on an unknown kid (rotation) and shares one fetch among concurrent requests', async () => {
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const b = generateKeyPairJwk('ES256', { kid: 'b' })
    const { remote, verifier, server } = await setup([a.publicJwk])
    await remote.loaded
    server.keys = [a.publicJwk, b.publicJwk]
    server.delayMs = 50
    const tokens = [1, 2, 3, 4].map((i) => signWithKey({ i }, b.privateKey, 'ES256', { kid: 'b' }))
    const results = await Promise.all(tokens.map((t) => verifier.verify(t)))
    expect(results.map((r: VerifiedToken) => r.claims['i'])).toEqual([1, 2, 3, 4])
    expect(server.requests).toBe(2)
  })

  it('refetches for unknown kids at most once per cooldown', async () => {
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const { remote, verifier, server } = await setup([a.publicJwk], { cooldownSeconds: 60 })
    await remote.loaded
    expect(await kindOf(() => verifier.verify(signWithKey({}, a.privateKey, 'ES256', { kid: 'x' })))).toBe(
      'JwtNoSuitableKey',
    )
    expect(server.requests).toBe(2)
    // Within the cooldown: answered from the current set, synchronously.
    expect(await kindOf(() => verifier.verify(signWithKey({}, a.privateKey, 'ES256', { kid: 'y' })))).toBe(
      'JwtNoSuitableKey',
    )
    expect(server.requests).toBe(2)
  })

  it('keeps the last good set when a fetch fails', async () => {
    const a = generateKeyPairJwk('EdDSA', { kid: 'a' })
    const { remote, verifier, server, metrics } = await setup([a.publicJwk])
    await remote.loaded
    server.status = 503
    await remote.refresh()
    expect(remote.ready).toBe(true)
    server.keys = []
    server.status = 200
    expect(
      (await verifier.verify(signWithKey({ ok: 1 }, a.privateKey, 'EdDSA', { kid: 'a' }))).claims,
    ).toEqual({
      ok: 1,
    })
    const fetches = (await metrics.keysetFetches.get()).values.map((v) => [v.labels['result'], v.value])
    expect(fetches).toEqual([
      ['ok', 1],
      ['error', 1],
    ])
  })

  it('drops cached tokens of a revoked key', async () => {
    const a = generateKeyPairJwk('RS256', { kid: 'a' })
    const b = generateKeyPairJwk('RS256', { kid: 'b' })
    const { remote, verifier, server } = await setup([a.publicJwk, b.publicJwk])
    const ta = signWithKey({ k: 'a' }, a.privateKey, 'RS256', { kid: 'a' })
    const tb = signWithKey({ k: 'b' }, b.privateKey, 'RS256', { kid: 'b' })
    await verifier.verify(ta)
    await verifier.verify(tb)
    expect(verifier.size).toBe(2)
    const epoch = remote.epoch
    server.keys = [b.publicJwk]
    await remote.refresh()
    expect(remote.epoch).toBe(epoch + 1)
    expect(await kindOf(() => verifier.verify(ta))).toBe('JwtNoSuitableKey')
    expect((await verifier.verify(tb)).claims).toEqual({ k: 'b' })
    // Adding a key does not invalidate anything.
    server.keys = [b.publicJwk, a.publicJwk]
    await remote.refresh()
    expect(remote.epoch).toBe(epoch + 1)
  })

  it('refreshes when max-age runs out, capped by maxAgeSeconds, and stops after close()', async () => {
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const { remote, server } = await setup([a.publicJwk], { maxAgeSeconds: 1 })
    server.cacheControl = 'public, max-age=600'
    await remote.loaded
    expect(server.requests).toBe(1)
    await delay(1300)
    expect(server.requests).toBe(2)
    remote.close()
    await delay(1200)
    expect(server.requests).toBe(2)
  })
})

describe('combineKeySets', () => {
  it('uses static keys at once and remote keys once loaded', async () => {
    const secret = 'reallyreallyreallyreallyverysafe'
    const a = generateKeyPairJwk('ES256', { kid: 'a' })
    const server = await startJwksServer([a.publicJwk])
    server.delayMs = 100
    const remote = createRemoteKeySet({ url: server.url, cooldownSeconds: 0, timeoutMs: 2000 })
    cleanups.push(
      () => remote.close(),
      () => server.close(),
    )
    const keys = combineKeySets(parseKeySet(secret, { isBase64: false }), remote)
    const verifier = createVerifier({ keys, aud: null, iss: null, clockSkewSeconds: 30, cacheMaxEntries: 10 })
    // Before the remote set is loaded, a static-key token is verified synchronously.
    const hs = verifier.verify(signHs({ s: 1 }, secret))
    expect(hs).not.toBeInstanceOf(Promise)
    expect(keys.ready).toBe(false)
    expect(
      (await verifier.verify(signWithKey({ r: 1 }, a.privateKey, 'ES256', { kid: 'a' }))).claims,
    ).toEqual({
      r: 1,
    })
    expect(keys.ready).toBe(true)
    expect(keys.size).toBe(2)
  })
})
