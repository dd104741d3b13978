// End to end, robustness: hostile HTTP (smuggling, oversized and slow heads), broken upstreams, aborts, large concurrent uploads, no duplicate POST.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { parseRawResponse, rawExchange } from '../../unit/security/support.js'

const SECRET = 'inbound-secret-inbound-secret-0123456789'
const UPSTREAM_SECRET = 'upstream-secret-upstream-secret-0123456789'
const HEADERS_TIMEOUT_MS = 400

/** What the upstream saw: every request head on arrival, and every completed body. */
interface Seen {
  readonly heads: { method: string; url: string; requestId: string }[]
  readonly bodies: Map<string, { length: number; sha256: string }>
  /** Upstream-side response sockets that closed, by request id. */
  readonly closed: Set<string>
}

const seen: Seen = { heads: [], bodies: new Map(), closed: new Set() }
/** Request ids whose POST the upstream fails by cutting the connection. */
let failPosts = false
let postCount = 0

function handle(req: IncomingMessage, res: ServerResponse): void {
  const requestId = String(req.headers['x-request-id'])
  seen.heads.push({ method: req.method ?? '', url: req.url ?? '', requestId })
  res.on('close', () => seen.closed.add(requestId))
  const path = req.url ?? '/'
  if (path.startsWith('/download')) {
    // Endless stream with back-pressure: only a closed socket stops it.
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const chunk = Buffer.alloc(64 * 1024, 'x')
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk)) {
        // keep writing until the socket needs draining
      }
      if (!res.destroyed) res.once('drain', pump)
    }
    pump()
    return
  }
  if (path.startsWith('/slow-answer')) {
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '13' })
      res.end('first answer\n')
    }, 300)
    return
  }
  if (path.startsWith('/reset-mid-response')) {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
    res.write('{"partial":')
    setTimeout(() => req.socket.destroy(), 50)
    return
  }
  if (req.method === 'POST' && failPosts && path.startsWith('/flaky')) {
    postCount++
    // Every other POST: the connection is cut once the body arrived (the upstream may have acted on it).
    if (postCount % 2 === 0) {
      req.resume()
      req.once('end', () => req.socket.destroy())
      return
    }
  }
  const hash = createHash('sha256')
  let length = 0
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    length += chunk.length
  })
  req.on('end', () => {
    const sha256 = hash.digest('hex')
    seen.bodies.set(requestId, { length, sha256 })
    const body = JSON.stringify({ length, sha256 })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}

let upstream: Server
let gateway: GatewayProcess
let port: number

beforeAll(async () => {
  upstream = createServer(handle)
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  gateway = await startGateway({
    env: {
      GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
      GATEWAY_JWT_SECRET: SECRET,
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
      GATEWAY_MAX_HEADER_BYTES: '4096',
      GATEWAY_LOG_LEVEL: 'warn',
      GATEWAY_SHUTDOWN_DELAY_MS: '0',
    },
  })
  port = Number(new URL(gateway.url).port)
})

afterAll(async () => {
  const exit = await gateway?.stop()
  upstream?.closeAllConnections()
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()))
  // The process shut down cleanly: no crash, no unhandled rejection along the way.
  expect(exit).toEqual({ code: 0, signal: null })
  expect(gateway.stderr()).toBe('')
})

const MALFORMED = JSON.stringify({
  code: 'GW002',
  details: null,
  hint: null,
  message: 'Malformed HTTP request',
})

describe('request smuggling is refused with 400 and never forwarded', () => {
  const attempts: [string, string][] = [
    [
      'Content-Length with Transfer-Encoding',
      'POST /smuggle-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'Transfer-Encoding with Content-Length (reversed order)',
      'POST /smuggle-2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    ],
    [
      'two different Content-Lengths',
      'POST /smuggle-3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello',
    ],
    ['a Content-Length list', 'POST /smuggle-4 HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 40\r\n\r\nhello'],
    [
      'obs-fold (a header continued on the next line)',
      'GET /smuggle-5 HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n',
    ],
    [
      'obs-fold of Transfer-Encoding',
      'POST /smuggle-6 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\nhello',
    ],
    [
      'Transfer-Encoding not ending in chunked',
      'POST /smuggle-7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    ],
    ['a space before the colon', 'POST /smuggle-8 HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello'],
    ['a bare LF line ending', 'GET /smuggle-9 HTTP/1.1\nHost: x\n\n'],
    ['a NUL in a header value', 'GET /smuggle-10 HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n'],
    ['a negative Content-Length', 'POST /smuggle-11 HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'],
  ]
  for (const [name, text] of attempts) {
    it(name, async () => {
      const before = seen.heads.length
      const { response, timedOut } = await rawExchange(port, text, 3000)
      expect(timedOut).toBe(false)
      const parsed = parseRawResponse(response)
      expect({ status: parsed.status, body: parsed.body }).toEqual({ status: 400, body: MALFORMED })
      // One response only: a smuggled second request got no answer of its own.
      expect(response.match(/HTTP\/1\.1 /g)).toHaveLength(1)
      await sleep(50)
      expect(seen.heads.slice(before)).toEqual([])
    })
  }

  it('a malformed request pipelined behind a valid one never answers in its place', async () => {
    // The 400 belongs to the second request; written at once it would read as the answer to the
    // first (or land inside its body). The first gets its answer or the connection is closed.
    const { response, timedOut } = await rawExchange(
      port,
      'GET /slow-answer HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      3000,
    )
    expect(timedOut).toBe(false)
    expect(response.startsWith('HTTP/1.1 400')).toBe(false)
    if (response !== '') {
      expect(parseRawResponse(response)).toMatchObject({ status: 200, body: 'first answer\n' })
    }
  })

  it.each([
    ['an invalid chunk size', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size with a sign', '+5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk longer than its size', '2\r\nhello\r\n0\r\n\r\n'],
    ['an overlong chunk size', `${'f'.repeat(20)}\r\nhello\r\n0\r\n\r\n`],
  ])('%s: 400, and no complete request reaches the upstream', async (_name, body) => {
    const id = `chunk-${randomBytes(4).toString('hex')}`
    const { response, timedOut } = await rawExchange(
      port,
      `POST /chunked HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${id}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`,
      3000,
    )
    expect(timedOut).toBe(false)
    const parsed = parseRawResponse(response)
    expect({ status: parsed.status, body: parsed.body }).toEqual({ status: 400, body: MALFORMED })
    await sleep(100)
    // A streamed body cannot be judged before it is forwarded: when valid chunks came first, the
    // head is already upstream as the bad chunk is parsed. The body then never completes and the
    // upstream's connection is cut, so PostgREST never runs the request.
    expect(seen.bodies.has(id)).toBe(false)
    if (seen.heads.some((head) => head.requestId === id)) expect(seen.closed.has(id)).toBe(true)
  })
})

describe('oversized and slow request heads', () => {
  it('a head over GATEWAY_MAX_HEADER_BYTES gets 431 with the gateway JSON body', async () => {
    const before = seen.heads.length
    const { response } = await rawExchange(
      port,
      `GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`,
    )
    const parsed = parseRawResponse(response)
    expect({ status: parsed.status, body: parsed.body }).toEqual({
      status: 431,
      body: JSON.stringify({
        code: 'GW001',
        details: null,
        hint: null,
        message: 'Request header fields too large',
      }),
    })
    expect(seen.heads.length).toBe(before)
  })

  it('slow request heads are cut off at GATEWAY_HEADERS_TIMEOUT_MS, not at the next 30 s connection sweep', async () => {
    // Its own gateway: a limit this small would also cut honest clients of a gateway under load.
    const strict = await startGateway({
      env: {
        GATEWAY_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
        GATEWAY_JWT_SECRET: SECRET,
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
        GATEWAY_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        GATEWAY_LOG_LEVEL: 'warn',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
      },
    })
    try {
      await expectCutOff(Number(new URL(strict.url).port))
    } finally {
      expect(await strict.stop()).toEqual({ code: 0, signal: null })
    }
  })
})

/** A slowloris against `port`: one header line every 100 ms; the gateway must answer 408 and close. */
async function expectCutOff(port: number): Promise<void> {
  {
    const started = Date.now()
    const socket = connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    let response = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      response += chunk
    })
    const closed = once(socket, 'close')
    // A slowloris: one header line every 100 ms, never the blank line that ends the head.
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n')
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(`X-Drip-${Date.now()}: 1\r\n`)
    }, 100)
    socket.on('error', () => undefined)
    try {
      await Promise.race([closed, sleep(10_000).then(() => Promise.reject(new Error('not cut off in 10 s')))])
    } finally {
      clearInterval(drip)
      socket.destroy()
    }
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50)
    expect(elapsed).toBeLessThan(HEADERS_TIMEOUT_MS + 2000)
    const parsed = parseRawResponse(response)
    expect({ status: parsed.status, body: parsed.body }).toEqual({
      status: 408,
      body: JSON.stringify({
        code: 'GW003',
        details: null,
        hint: null,
        message: 'Request not received in time',
      }),
    })
  }
}

describe('upstream failures and client aborts', () => {
  it('an upstream that resets mid-response gives the client a cut response, not a hang', async () => {
    const started = Date.now()
    const res = await request(`${gateway.url}/reset-mid-response`, {
      headersTimeout: 5000,
      bodyTimeout: 5000,
    })
    expect(res.statusCode).toBe(200)
    await expect(res.body.text()).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('a client that aborts a download frees the upstream: its socket closes', async () => {
    const id = `download-${randomBytes(4).toString('hex')}`
    const controller = new AbortController()
    const res = await request(`${gateway.url}/download`, {
      headers: { 'x-request-id': id },
      signal: controller.signal,
    })
    expect(res.statusCode).toBe(200)
    let received = 0
    for await (const chunk of res.body) {
      received += (chunk as Buffer).length
      if (received > 4 * 1024 * 1024) break
    }
    controller.abort()
    const deadline = Date.now() + 5000
    while (!seen.closed.has(id) && Date.now() < deadline) await sleep(20)
    expect(seen.closed.has(id)).toBe(true)
  })

  it('100 concurrent 10 MB uploads arrive byte-identical (sha256)', async () => {
    const base = randomBytes(10 * 1024 * 1024)
    const agent = new Agent({ connections: 100 })
    try {
      const uploads = Array.from({ length: 100 }, (_, i) => {
        const id = `upload-${i}-${randomBytes(4).toString('hex')}`
        const prefix = Buffer.from(id.padEnd(64, '.'))
        const expected = createHash('sha256').update(prefix).update(base).digest('hex')
        const run = async () => {
          const res = await request(`${gateway.url}/upload`, {
            method: 'POST',
            dispatcher: agent,
            headers: {
              'x-request-id': id,
              'content-type': 'application/octet-stream',
              'content-length': String(prefix.length + base.length),
            },
            body: Readable.from([prefix, base.subarray(0, 4 * 1024 * 1024), base.subarray(4 * 1024 * 1024)]),
          })
          const answer = (await res.body.json()) as { length: number; sha256: string }
          return { status: res.statusCode, answer }
        }
        return { id, expected, length: prefix.length + base.length, done: run() }
      })
      for (const upload of uploads) {
        const { status, answer } = await upload.done
        expect(status).toBe(200)
        expect(answer).toEqual({ length: upload.length, sha256: upload.expected })
        expect(seen.bodies.get(upload.id)).toEqual({ length: upload.length, sha256: upload.expected })
      }
    } finally {
      await agent.close()
    }
  }, 60_000)

  it('a POST is never sent twice, even when the upstream cuts connections', async () => {
    failPosts = true
    try {
      const ids: string[] = []
      const statuses: number[] = []
      await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const id = `post-${i}-${randomBytes(4).toString('hex')}`
          ids.push(id)
          const res = await request(`${gateway.url}/flaky`, {
            method: 'POST',
            headers: { 'x-request-id': id, 'content-type': 'application/json' },
            body: JSON.stringify({ i }),
          })
          await res.body.text()
          statuses.push(res.statusCode)
        }),
      )
      for (const id of ids) {
        expect(seen.heads.filter((head) => head.requestId === id)).toHaveLength(1)
      }
      // Failures were injected and answered, not retried into success.
      expect(statuses.filter((status) => status === 502).length).toBeGreaterThan(0)
      expect(statuses.every((status) => status === 200 || status === 502)).toBe(true)
    } finally {
      failPosts = false
    }
  })
})
