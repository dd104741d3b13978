// The latency bench's open-loop driver, against real HTTP servers on 127.0.0.1.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { paced, responseLength } from '../../../bench/paced.js'

const REQUEST = Buffer.from('GET /items HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n', 'latin1')

let server: Server | undefined

afterEach(async () => {
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
  server = undefined
})

async function listen(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<{
  port: number
  received: () => number
}> {
  let n = 0
  server = createServer((req, res) => handler(req, res, n++))
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, received: () => n }
}

describe('responseLength', () => {
  const bytes = (text: string) => Buffer.from(text, 'latin1')

  it('frames a body by Content-Length, and waits for all of it', () => {
    const whole = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello'
    expect(responseLength(bytes(whole))).toBe(whole.length)
    expect(responseLength(bytes(whole.slice(0, -1)))).toBe(-1)
    expect(responseLength(bytes('HTTP/1.1 200 OK\r\nContent-Len'))).toBe(-1)
  })

  it('frames a chunked body by its last chunk', () => {
    const whole = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
    expect(responseLength(bytes(whole))).toBe(whole.length)
    expect(responseLength(bytes(whole.slice(0, -2)))).toBe(-1)
    const empty = 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
    expect(responseLength(bytes(empty))).toBe(empty.length)
  })

  it('answers the length of the first of two responses', () => {
    const first = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'
    expect(responseLength(bytes(`${first}HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok`))).toBe(first.length)
  })
})

describe('paced', () => {
  it('sends rate x seconds requests and times every 200 from when it fell due', async () => {
    const { port, received } = await listen((_req, res) => {
      setTimeout(() => res.end('[]'), 20)
    })
    const result = await paced({ port, rate: 200, seconds: 0.5, connections: 8, requests: [REQUEST] })
    expect(received()).toBe(100)
    expect(result.failures).toBe(0)
    expect(result.latencies.length).toBe(100)
    // Ascending, and none much shorter than the server's own 20 ms (a Node timer may fire up to a
    // few milliseconds short of its delay as performance.now() counts it: it starts from the event
    // loop's cached time).
    expect([...result.latencies]).toEqual([...result.latencies].sort((a, b) => a - b))
    expect(result.latencies[0]).toBeGreaterThanOrEqual(15)
  })

  it('charges the wait for a free connection to the request (no coordinated omission)', async () => {
    // One connection, 20 ms a response: 50 a second can be answered, 200 a second are offered.
    const { port } = await listen((_req, res) => {
      setTimeout(() => res.end('[]'), 20)
    })
    const result = await paced({ port, rate: 200, seconds: 0.5, connections: 1, requests: [REQUEST] })
    expect(result.latencies.length).toBe(100)
    // The 100th request fell due at 495 ms and was answered after about 100 x 20 ms = 2 s: a closed
    // loop would have timed it at 20 ms.
    expect(result.latencies[99]).toBeGreaterThan(1_000)
    expect(result.latencies[0]).toBeLessThan(200)
  })

  it('counts non-200 answers, chunked or not, as failures and keeps their latencies out', async () => {
    const { port } = await listen((_req, res, n) => {
      if (n % 4 === 0) {
        res.writeHead(503, { 'content-type': 'application/json' })
        res.end('{"code":"PGRST000"}')
        return
      }
      // No Content-Length: Node sends the body chunked.
      res.write('[')
      res.end(']')
    })
    const result = await paced({ port, rate: 400, seconds: 0.25, connections: 4, requests: [REQUEST] })
    expect(result.failures).toBe(25)
    expect(result.latencies.length).toBe(75)
  })

  it('counts a request whose connection closed as failed and goes on with the others', async () => {
    const { port } = await listen((req, res, n) => {
      if (n === 3) {
        req.socket.destroy()
        return
      }
      res.end('[]')
    })
    const result = await paced({
      port,
      rate: 200,
      seconds: 0.25,
      connections: 4,
      requests: [REQUEST],
      drainMs: 1_000,
    })
    expect(result.failures).toBe(1)
    expect(result.latencies.length).toBe(49)
  })

  it('sends the requests in turn', async () => {
    const paths: string[] = []
    const { port } = await listen((req, res) => {
      paths.push(req.url ?? '')
      res.end('[]')
    })
    const requests = ['/a', '/b', '/c'].map((p) =>
      Buffer.from(`GET ${p} HTTP/1.1\r\nhost: x\r\n\r\n`, 'latin1'),
    )
    const result = await paced({ port, rate: 100, seconds: 0.06, connections: 1, requests })
    expect(result.failures).toBe(0)
    expect(paths).toEqual(['/a', '/b', '/c', '/a', '/b', '/c'])
  })
})
