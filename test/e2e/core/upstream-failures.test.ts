// End to end, gateway and stand-in: an upstream that is down or too slow, and a client that leaves mid-upload.
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  bearer,
  type E2eStack,
  errorView,
  eventually,
  expectedError,
  gatewayEnv,
  inboundToken,
  send,
  startE2eStack,
  userClaims,
} from '../../support/e2e-stack.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { freePort } from '../../support/postgres.js'
import type { StandIn } from '../../support/postgrest-stand-in.js'

const MB = 1024 * 1024

/** `gateway_requests_in_flight` from the admin listener's /metrics. */
async function gatewayInFlight(gateway: GatewayProcess): Promise<number> {
  const reply = await send(`${gateway.adminUrl}/metrics`)
  const match = /^gateway_requests_in_flight (\d+)$/m.exec(reply.text)
  if (match === null) throw new Error('gateway_requests_in_flight not in /metrics')
  return Number(match[1])
}

describe('upstream failures (stand-in)', () => {
  let stack: E2eStack
  let standIn: StandIn
  /** The same stand-in behind a gateway that waits at most 300 ms for response headers. */
  let impatient: GatewayProcess

  beforeAll(async () => {
    stack = await startE2eStack({ upstream: 'stand-in' })
    standIn = stack.upstream.standIn!
    impatient = await startGateway({
      env: { ...gatewayEnv(stack.upstream.url, null), GATEWAY_UPSTREAM_TIMEOUT_MS: '300' },
    })
  })
  afterAll(async () => {
    await impatient?.stop()
    await stack?.close()
  })

  test('an upstream that is down: 502 GW401', async () => {
    // A port nobody listens on: connection refused.
    const down = await startGateway({ env: gatewayEnv(`http://127.0.0.1:${await freePort()}`, null) })
    try {
      const reply = await send(`${down.url}/notes`, { headers: bearer(inboundToken(userClaims('alice'))) })
      expect(errorView(reply)).toStrictEqual(
        expectedError(502, 'GW401', 'Upstream is unreachable', { origin: 'gateway' }),
      )
      const anonymous = await send(`${down.url}/notes`)
      expect(errorView(anonymous)).toStrictEqual(
        expectedError(502, 'GW401', 'Upstream is unreachable', { origin: 'gateway' }),
      )
    } finally {
      await down.stop()
    }
  })

  test('an upstream slower than GATEWAY_UPSTREAM_TIMEOUT_MS: 504 GW402, and the upstream request is cut', async () => {
    const before = standIn.requests.length
    const abortedBefore = standIn.aborted
    const started = performance.now()
    const reply = await send(`${impatient.url}/__standin/slow?ms=5000`)
    const elapsed = performance.now() - started
    expect(errorView(reply)).toStrictEqual(
      expectedError(504, 'GW402', 'Upstream timed out', { origin: 'gateway' }),
    )
    // undici runs its headers timeout on coarse timers (about 1 s resolution): 300 ms fire after about 1 s.
    expect(elapsed).toBeGreaterThanOrEqual(250)
    expect(elapsed).toBeLessThan(2500)
    expect(standIn.requests.length).toBe(before + 1)
    // The stand-in sees its connection closed long before its 5 s are up: nothing is left behind.
    expect(await eventually(() => standIn.inFlight === 0, 2000)).toBe(true)
    expect(standIn.aborted).toBe(abortedBefore + 1)
    // A fast request through the same gateway is not affected.
    const fast = await send(`${impatient.url}/__standin/slow?ms=10`)
    expect(fast.status).toBe(200)
    expect(JSON.parse(fast.text)).toEqual({ sleptMs: 10 })
  })

  test('a client that aborts mid-upload leaves no upstream request behind', async () => {
    const before = standIn.requests.length
    const abortedBefore = standIn.aborted
    const client = httpRequest(`${stack.gateway.url}/__standin/echo`, {
      method: 'POST',
      headers: {
        ...bearer(inboundToken(userClaims('alice'))),
        'content-type': 'application/octet-stream',
        'content-length': String(64 * MB),
      },
    })
    client.on('error', () => {}) // the abort below is the point
    const chunk = Buffer.alloc(MB, 7)
    for (let sent = 0; sent < 8; sent++) {
      if (!client.write(chunk)) await new Promise((resolve) => client.once('drain', resolve))
    }
    // The upload is under way upstream: the stand-in has the request open and is reading its body.
    expect(await eventually(() => standIn.requests.length === before + 1 && standIn.inFlight === 1)).toBe(
      true,
    )
    expect(standIn.requests[before]).toMatchObject({ method: 'POST', path: '/__standin/echo' })
    expect(standIn.requests[before]!.headers['content-length']).toEqual([String(64 * MB)])

    client.destroy()

    expect(await eventually(() => standIn.inFlight === 0, 5000)).toBe(true)
    expect(standIn.aborted).toBe(abortedBefore + 1)
    expect(await gatewayInFlight(stack.gateway)).toBe(0)
    // The gateway keeps serving.
    const after = await send(`${stack.gateway.url}/__standin/echo`, { method: 'POST', body: 'ok' })
    expect(after.status).toBe(200)
    expect(JSON.parse(after.text)).toMatchObject({ method: 'POST', bodyLength: 2 })
  })

  test('a client that leaves mid-download: the upstream response is cut too', async () => {
    const before = standIn.requests.length
    const abortedBefore = standIn.aborted
    const received = await new Promise<number>((resolve, reject) => {
      const client = httpRequest(`${stack.gateway.url}/__standin/download?bytes=${512 * MB}`, {
        headers: bearer(inboundToken(userClaims('alice'))),
      })
      client.on('error', () => {}) // the abort below is the point
      client.on('response', (res) => {
        let length = 0
        res.on('data', (chunk: Buffer) => {
          length += chunk.length
          if (length >= 4 * MB && !client.destroyed) {
            client.destroy()
            resolve(length)
          }
        })
        res.on('end', () => reject(new Error('the whole 512 MB arrived before the abort')))
      })
      client.end()
    })
    expect(received).toBeGreaterThanOrEqual(4 * MB)
    expect(standIn.requests.length).toBe(before + 1)
    expect(await eventually(() => standIn.inFlight === 0, 5000)).toBe(true)
    expect(standIn.aborted).toBe(abortedBefore + 1)
    expect(await gatewayInFlight(stack.gateway)).toBe(0)
  })
})
