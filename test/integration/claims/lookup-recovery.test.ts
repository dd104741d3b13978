// Claims lookup: the pool recovers after lookups that timed out while their connection was opening.

import type { AddressInfo } from 'node:net'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLookup, LookupFailed } from '../../../src/claims/lookup.js'
import { createAuthDatabase, dbConfig, insertUser, type TestDatabase, testServer } from './helpers.js'

/**
 * A TCP relay to PostgreSQL that can hold connections: while held, what a client sends waits in
 * the relay (a database still starting up); on release it is forwarded and the session continues.
 */
async function startRelay(target: URL): Promise<{ port: number; release(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const waiting: (() => void)[] = []
  let held = true
  const server: Server = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    client.pause()
    const forward = (): void => {
      const upstream = connect(Number(target.port), target.hostname)
      sockets.add(upstream)
      upstream.on('error', () => client.destroy())
      upstream.on('close', () => client.destroy())
      client.on('close', () => upstream.destroy())
      client.pipe(upstream).pipe(client)
      client.resume()
    }
    if (held) waiting.push(forward)
    else forward()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    release() {
      held = false
      for (const forward of waiting.splice(0)) forward()
    },
    async close() {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('claims lookup after a database that did not answer', () => {
  let server: Awaited<ReturnType<typeof testServer>>
  let db: TestDatabase

  beforeAll(async () => {
    server = await testServer()
    db = await createAuthDatabase(server.adminUrl)
  })
  afterAll(async () => {
    await db?.drop()
    await server?.release()
  })

  it('runs queries again once it answers (a timed-out lookup that never started is not cancelled in the queue)', async () => {
    const userId = await insertUser(db.sql, { provider: 'email', role: 'staff' })
    const relay = await startRelay(new URL(db.url))
    const url = new URL(db.url)
    url.port = String(relay.port)
    const lookup = createLookup({
      ...dbConfig(url.toString(), { lookupTimeoutMs: 200, poolSize: 2 }),
      url: url.toString(),
    })
    try {
      // The connections are opening but not answered yet: both lookups time out before they start.
      const timedOut = await Promise.allSettled([lookup.user(userId), lookup.user(userId)])
      for (const outcome of timedOut) {
        expect(outcome.status).toBe('rejected')
        expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(LookupFailed)
      }
      // The database answers now, on the same connections: the timed-out lookups were never sent.
      relay.release()
      let row: Awaited<ReturnType<typeof lookup.user>> | undefined
      const deadline = Date.now() + 8000
      while (row === undefined && Date.now() < deadline) {
        try {
          row = await lookup.user(userId)
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
      expect(row).toEqual({
        appMetadata: { provider: 'email', role: 'staff' },
        role: 'authenticated',
        bannedUntil: 0,
        deleted: false,
      })
    } finally {
      await lookup.close()
      await relay.close()
    }
  }, 20_000)
})
