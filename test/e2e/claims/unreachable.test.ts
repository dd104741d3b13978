// End to end: the database stops answering mid-lookup (a frozen network path): 503, and the gateway process lives on.
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DEMO_USERS } from '../../support/database.js'
import { adminUrl } from '../../support/shared-postgres.js'
import { call, demoToken, errorBody, type Stack, startStack } from './stack.js'

/** A TCP relay to PostgreSQL that can be frozen: bytes stop flowing and new connections are refused. */
interface Relay {
  readonly port: number
  freeze(): void
  close(): void
}

async function startRelay(target: URL): Promise<Relay> {
  let frozen = false
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname)
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from)
      from.on('data', (chunk) => {
        if (!frozen) to.write(chunk)
      })
      from.on('error', () => {})
      from.on('close', () => {
        sockets.delete(from)
        to.destroy()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    freeze() {
      frozen = true
      server.close()
    },
    close() {
      server.close()
      for (const socket of sockets) socket.destroy()
    },
  }
}

let stack: Stack
let relay: Relay

beforeAll(async () => {
  relay = await startRelay(new URL(adminUrl()))
  stack = await startStack({
    adminUrl: adminUrl(),
    env: { GATEWAY_DB_LOOKUP_TIMEOUT_MS: '300' },
    gatewayDbUrl: (dbUrl) => {
      const via = new URL(dbUrl)
      via.port = String(relay.port)
      return via.toString()
    },
  })
})

afterAll(async () => {
  await stack?.close()
  relay?.close()
})

describe('when the database stops answering in the middle of a lookup', () => {
  test('a lookup timed out while the database became unreachable does not crash the gateway (postgres.js drops the rejection of its cancel request)', async () => {
    const { gateway } = stack
    expect((await call(gateway, '/rpc/whoami', demoToken('alice'), { method: 'POST' })).status).toBe(200)

    relay.freeze()
    // bob is not cached: his lookup is sent into the frozen path, times out, and its cancel
    // request finds the port closed (ECONNREFUSED).
    for (let i = 0; i < 2; i++) {
      const answer = await call(gateway, '/rpc/whoami', demoToken('bob'), { method: 'POST' })
      expect(answer.status).toBe(503)
      expect(answer.text).toBe(errorBody('GW105', 'Current claims cannot be read'))
      expect(answer.headers.get('retry-after')).toBe('5')
    }
    // Time for a cancel request's rejection to surface (and, before the fix, for the process to exit).
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(gateway.process.exitCode).toBeNull()
    expect(gateway.stderr()).not.toContain('unhandled rejection')
    const live = await fetch(`${gateway.adminUrl}/live`)
    expect(live.status).toBe(200)
    // alice is still served from the cache (the listener has not noticed the frozen path yet).
    const cached = await call(gateway, '/__standin/echo', demoToken('alice'))
    expect(cached.status).toBe(200)
    expect(cached.json).toMatchObject({
      auth: { role: 'authenticated', claims: { sub: DEMO_USERS.alice.id } },
    })
  })
})
