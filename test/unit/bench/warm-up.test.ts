// The load bench's warm-up: the JIT drive, then the short drives that pause every target in turn.
import type { ChildProcess } from 'node:child_process'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { PAUSE_WARM_UPS, type Target, warmUp } from '../../../bench/load.js'

const servers: Server[] = []

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))))
})

/**
 * A target on 127.0.0.1 that records, in `log`, each burst of connections it gets: a burst starts
 * with a connection opened while none is open. Its CPU is read from this process.
 */
async function target(name: string, log: string[]): Promise<Target> {
  let open = 0
  const server = createServer((_req, res) => res.end('ok'))
  server.keepAliveTimeout = 60_000
  server.on('connection', (socket) => {
    if (open++ === 0) log.push(name)
    socket.on('close', () => open--)
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { name, port, child: { pid: process.pid } as ChildProcess }
}

describe('warmUp', () => {
  it('drives every target once for the JIT, then in turn in each pause pass', async () => {
    const log: string[] = []
    const targets = [await target('a', log), await target('b', log)]
    await warmUp(targets, 2, [{ accept: 'text/plain' }], { jitSeconds: 0.3, pauseSeconds: 0.2 })
    const passes = Array.from({ length: 1 + PAUSE_WARM_UPS }, () => ['a', 'b']).flat()
    expect(log).toEqual(passes)
  })
})
