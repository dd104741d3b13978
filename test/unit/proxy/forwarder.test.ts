import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http'
import { type AddressInfo, connect, createServer as createTcpServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { GatewayError, sendError } from '../../../src/errors/index.js'
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js'
import {
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwardOutcome,
} from '../../../src/proxy/index.js'

// --- test servers --------------------------------------------------------------------------------

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as AddressInfo).port
}

/** A stand-in for PostgREST: the handler sees exactly what the gateway sent. */
async function startUpstream(handler: RequestListener): Promise<{ url: string; port: number }> {
  const port = await listen(createServer(handler))
  return { url: `http://127.0.0.1:${port}`, port }
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createTcpServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

interface Gateway {
  readonly port: number
  readonly forwarder: Forwarder
  readonly metrics: Metrics
  readonly outcomes: ForwardOutcome[]
  readonly failures: unknown[]
  /** Resolves once `n` exchanges have settled (resolved or rejected). */
  settled(n: number): Promise<void>
}

/**
 * The tiny gateway the tests drive: keeps an inbound X-Request-Id or makes one, forwards with a
 * fixed Authorization, and answers a rejection through the one error exit (sendError).
 */
async function startGateway(
  upstreamUrl: string,
  options: Partial<ForwarderOptions> & { authorization?: string | null } = {},
): Promise<Gateway> {
  const metrics = createMetrics({ defaultMetrics: false })
  const forwarder = createForwarder({
    url: upstreamUrl,
    timeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    connectTimeoutMs: 1_000,
    connections: 4,
    trustForwardedHeaders: false,
    metrics,
    ...options,
  })
  cleanups.push(() => forwarder.close())
  const authorization = options.authorization === undefined ? 'Bearer minted' : options.authorization
  const outcomes: ForwardOutcome[] = []
  const failures: unknown[] = []
  let count = 0
  const waiters: Array<{ n: number; resolve: () => void }> = []
  const settle = (): void => {
    count++
    for (const w of waiters) if (count >= w.n) w.resolve()
  }
  const server = createServer((req, res) => {
    const inbound = req.headers['x-request-id']
    const requestId = typeof inbound === 'string' ? inbound : randomUUID()
    forwarder.forward(req, res, authorization, requestId, null, (_opaque, failure, outcome) => {
      // The outcome is read during the call only: copied.
      const { status, upstreamMs, clientAborted } = outcome
      if (failure === null) outcomes.push({ status, upstreamMs, clientAborted })
      else {
        failures.push(failure)
        sendError(res, failure)
      }
      settle()
    })
  })
  const port = await listen(server)
  return {
    port,
    forwarder,
    metrics,
    outcomes,
    failures,
    settled: (n) =>
      new Promise((resolve) => {
        if (count >= n) resolve()
        else waiters.push({ n, resolve })
      }),
  }
}

interface Reply {
  readonly status: number
  readonly statusMessage: string
  readonly rawHeaders: string[]
  readonly body: Buffer
}

function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!)
  }
  return values
}

function send(
  port: number,
  options: {
    method?: string
    path?: string
    headers?: Record<string, string | string[]>
    body?: Buffer | string
  },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            statusMessage: res.statusMessage!,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Sends raw bytes and returns everything the server wrote until it closed the connection. */
async function sendRaw(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  // Not end(): Node's server drops a half-closed connection's pending response.
  socket.write(text)
  await once(socket, 'close')
  return Buffer.concat(chunks).toString('latin1')
}

/** The header lines of a raw response, without Date (it changes every second). */
function headLines(raw: string): string[] {
  const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
  return head.split('\r\n').filter((line) => !line.startsWith('Date: '))
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Polls `read` until it stops changing for `quietMs`; returns the settled value. */
async function settledValue(read: () => number, quietMs = 300): Promise<number> {
  let last = read()
  for (;;) {
    await sleep(quietMs)
    const now = read()
    if (now === last) return now
    last = now
  }
}

async function counterValues(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const v of (await metrics.upstreamErrors.get()).values) out[String(v.labels.kind)] = v.value
  return out
}

const MB = 1024 * 1024

/** `Promise.withResolvers`, which Node 20 lacks. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

// --- headers ---------------------------------------------------------------------------------------

describe('forward: headers', () => {
  it('sends the client headers without hop-by-hop fields, with the minted Authorization and X-Forwarded-*', async () => {
    let seen: { method: string; url: string; rawHeaders: string[]; body: string } | null = null
    const upstream = await startUpstream((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        seen = {
          method: req.method!,
          url: req.url!,
          rawHeaders: req.rawHeaders,
          body: Buffer.concat(chunks).toString(),
        }
        res.end()
      })
    })
    const gw = await startGateway(upstream.url)
    const raw = await sendRaw(
      gw.port,
      'POST /todos?select=id HTTP/1.1\r\n' +
        'Host: gw.example:8080\r\n' +
        'Connection: close, X-Hop-Secret\r\n' +
        'Keep-Alive: timeout=5\r\n' +
        'X-Hop-Secret: s\r\n' +
        'TE: trailers\r\n' +
        'Proxy-Authorization: Basic YTpi\r\n' +
        'Prefer: return=representation\r\n' +
        'Prefer: count=exact\r\n' +
        'Authorization: Bearer inbound\r\n' +
        'X-Request-Id: client-id-1\r\n' +
        'X-Forwarded-For: 10.0.0.1\r\n' +
        'X-Forwarded-Proto: https\r\n' +
        'X-Forwarded-Host: evil.example\r\n' +
        'Accept-Profile: api\r\n' +
        'apikey: anon-key\r\n' +
        'Content-Type: application/json\r\n' +
        'Content-Length: 9\r\n' +
        '\r\n' +
        '{"id":42}',
    )
    expect(raw.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true)
    expect(seen).toEqual({
      method: 'POST',
      url: '/todos?select=id',
      rawHeaders: [
        'host',
        `127.0.0.1:${upstream.port}`,
        'connection',
        'keep-alive',
        'Prefer',
        'return=representation',
        'Prefer',
        'count=exact',
        'Accept-Profile',
        'api',
        'apikey',
        'anon-key',
        'Content-Type',
        'application/json',
        'Authorization',
        'Bearer minted',
        'x-forwarded-for',
        '127.0.0.1',
        'x-forwarded-proto',
        'http',
        'x-forwarded-host',
        'gw.example:8080',
        'x-request-id',
        'client-id-1',
        'content-length',
        '9',
      ],
      body: '{"id":42}',
    })
  })

  it('sends no Authorization for an anonymous request and keeps the upstream path prefix', async () => {
    let seen: { url: string; authorization: string | undefined } | null = null
    const upstream = await startUpstream((req, res) => {
      seen = { url: req.url!, authorization: req.headers.authorization }
      res.end()
    })
    const gw = await startGateway(`${upstream.url}/rest/v1/`, { authorization: null })
    const reply = await send(gw.port, { path: '/todos?id=eq.1', headers: { authorization: 'Basic YTpi' } })
    expect(reply.status).toBe(200)
    expect(seen).toEqual({ url: '/rest/v1/todos?id=eq.1', authorization: undefined })
  })

  it('handles Expect: 100-continue at the gateway (curl sends it for large bodies) and forwards the body', async () => {
    let seen: { expect: string | undefined; body: string } | null = null
    const upstream = await startUpstream((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        seen = { expect: req.headers.expect, body: Buffer.concat(chunks).toString() }
        res.end()
      })
    })
    const gw = await startGateway(upstream.url)
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: gw.port,
        method: 'POST',
        path: '/todos',
        headers: { expect: '100-continue', 'content-length': '12' },
        agent: false,
      })
      req.on('continue', () => req.end('{"title":1}\n'))
      req.on('response', (res) => {
        res.resume()
        resolve(res.statusCode!)
      })
      req.on('error', reject)
    })
    expect(status).toBe(200)
    expect(seen).toEqual({ expect: undefined, body: '{"title":1}\n' })
  })

  it('appends to trusted X-Forwarded-For and keeps trusted X-Forwarded-Proto/Host', async () => {
    let seen: string[] = []
    const upstream = await startUpstream((req, res) => {
      seen = [
        ...headerValues(req.rawHeaders, 'x-forwarded-for'),
        ...headerValues(req.rawHeaders, 'x-forwarded-proto'),
        ...headerValues(req.rawHeaders, 'x-forwarded-host'),
      ]
      res.end()
    })
    const gw = await startGateway(upstream.url, { trustForwardedHeaders: true })
    await send(gw.port, {
      headers: {
        'x-forwarded-for': ['10.0.0.1', '10.0.0.2'],
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'api.example',
      },
    })
    expect(seen).toEqual(['10.0.0.1, 10.0.0.2, 127.0.0.1', 'https', 'api.example'])
  })

  it('returns the request id to the client and the upstream, kept when given and generated otherwise', async () => {
    const seen: string[] = []
    const upstream = await startUpstream((req, res) => {
      seen.push(...headerValues(req.rawHeaders, 'x-request-id'))
      res.setHeader('X-Request-Id', 'upstream-own')
      res.end()
    })
    const gw = await startGateway(upstream.url)
    const kept = await send(gw.port, { headers: { 'x-request-id': 'abc-123' } })
    const made = await send(gw.port, {})
    expect(headerValues(kept.rawHeaders, 'x-request-id')).toEqual(['abc-123'])
    const generated = headerValues(made.rawHeaders, 'x-request-id')
    expect(generated).toHaveLength(1)
    expect(generated[0]).toMatch(/^[0-9a-f-]{36}$/)
    expect(seen).toEqual(['abc-123', generated[0]])
  })

  it('passes response headers in their case and order, repeated Set-Cookie repeated, hop-by-hop dropped', async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, [
        'Content-Type',
        'application/json; charset=utf-8',
        'Connection',
        'keep-alive, X-Internal',
        'Keep-Alive',
        'timeout=5',
        'X-Internal',
        'secret',
        'Set-Cookie',
        'a=1; Path=/',
        'Preference-Applied',
        'return=representation',
        'set-cookie',
        'b=2; HttpOnly',
        'Proxy-Status',
        'PostgREST; error=PGRST116',
        'Upgrade',
        'h2c',
        'Content-Length',
        '2',
      ])
      res.end('[]')
    })
    const gw = await startGateway(upstream.url)
    const raw = await sendRaw(
      gw.port,
      'GET /x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: r-1\r\nConnection: close\r\n\r\n',
    )
    expect(headLines(raw)).toEqual([
      'HTTP/1.1 200 OK',
      'Content-Type: application/json; charset=utf-8',
      'Set-Cookie: a=1; Path=/',
      'Preference-Applied: return=representation',
      'set-cookie: b=2; HttpOnly',
      'Proxy-Status: PostgREST; error=PGRST116',
      'Content-Length: 2',
      'X-Request-Id: r-1',
      'Connection: close',
    ])
    expect(raw.endsWith('\r\n\r\n[]')).toBe(true)
  })
})

// --- status codes -----------------------------------------------------------------------------------

describe('forward: status codes', () => {
  it('passes 206 with Content-Range, 332 and 419 set from SQL, and their headers, exactly', async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.url === '/range') {
        res.writeHead(206, { 'Content-Range': '0-1/*', 'Range-Unit': 'items' })
        res.end('[1,2]')
      } else if (req.url === '/332') {
        res.writeHead(332, 'Custom', { 'X-From-Sql': 'yes' })
        res.end('{"moved":true}')
      } else {
        res.writeHead(419, { 'Content-Type': 'application/json' })
        res.end('{"x":1}')
      }
    })
    const gw = await startGateway(upstream.url)
    const range = await send(gw.port, { path: '/range', headers: { range: '0-1' } })
    expect([range.status, range.statusMessage, range.body.toString()]).toEqual([
      206,
      'Partial Content',
      '[1,2]',
    ])
    expect(headerValues(range.rawHeaders, 'content-range')).toEqual(['0-1/*'])
    expect(headerValues(range.rawHeaders, 'range-unit')).toEqual(['items'])
    const custom = await send(gw.port, { path: '/332' })
    // Node has no name for 332 and sends its placeholder; clients ignore the phrase (RFC 9112 4).
    expect([custom.status, custom.statusMessage, custom.body.toString()]).toEqual([
      332,
      'unknown',
      '{"moved":true}',
    ])
    expect(headerValues(custom.rawHeaders, 'x-from-sql')).toEqual(['yes'])
    const teapotish = await send(gw.port, { path: '/419' })
    expect([teapotish.status, teapotish.body.toString()]).toEqual([419, '{"x":1}'])
    await gw.settled(3)
    expect(gw.outcomes.map((o) => [o.status, o.clientAborted])).toEqual([
      [206, false],
      [332, false],
      [419, false],
    ])
  })

  it('sends no body for HEAD, 204 and 304 but keeps their headers', async () => {
    const upstream = await startUpstream((req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'Content-Length': '5', 'Content-Range': '0-4/5' })
        res.end()
      } else if (req.url === '/204') {
        res.writeHead(204, { 'Preference-Applied': 'return=minimal' })
        res.end()
      } else {
        res.writeHead(304, { ETag: '"v1"' })
        res.end()
      }
    })
    const gw = await startGateway(upstream.url)
    const head = await send(gw.port, { method: 'HEAD', path: '/x' })
    expect([head.status, head.body.length]).toEqual([200, 0])
    expect(headerValues(head.rawHeaders, 'content-length')).toEqual(['5'])
    const noContent = await send(gw.port, { method: 'DELETE', path: '/204' })
    expect([noContent.status, noContent.body.length]).toEqual([204, 0])
    expect(headerValues(noContent.rawHeaders, 'preference-applied')).toEqual(['return=minimal'])
    const notModified = await send(gw.port, { path: '/304' })
    expect([notModified.status, notModified.body.length]).toEqual([304, 0])
    expect(headerValues(notModified.rawHeaders, 'etag')).toEqual(['"v1"'])
  })
})

// --- streaming and back-pressure ------------------------------------------------------------------

describe('forward: streaming', () => {
  it('streams a 50 MB upload byte-identical and pauses the client while the upstream does not read', async () => {
    const payload = randomBytes(50 * MB)
    let upstreamReq: IncomingMessage | null = null
    let upstreamRes: ServerResponse | null = null
    const upstream = await startUpstream((req, res) => {
      // Do not read yet: the gateway must stop reading the client instead of buffering.
      req.pause()
      upstreamReq = req
      upstreamRes = res
    })
    const gw = await startGateway(upstream.url)

    let written = 0
    const reply = new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: gw.port,
          method: 'POST',
          path: '/rpc/bulk',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(payload.length) },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({
              status: res.statusCode!,
              statusMessage: res.statusMessage!,
              rawHeaders: res.rawHeaders,
              body: Buffer.concat(chunks),
            }),
          )
        },
      )
      req.on('error', reject)
      void (async () => {
        for (let offset = 0; offset < payload.length; offset += 64 * 1024) {
          const chunk = payload.subarray(offset, offset + 64 * 1024)
          written += chunk.length
          if (!req.write(chunk)) await once(req, 'drain')
        }
        req.end()
      })()
    })

    await expect.poll(() => upstreamReq !== null).toBe(true)
    const stalledAt = await settledValue(() => written)
    // Only socket buffers sit between client and upstream: far less than the whole body got through.
    expect(stalledAt).toBeLessThan(25 * MB)

    const hash = createHash('sha256')
    let received = 0
    upstreamReq!.on('data', (chunk: Buffer) => {
      received += chunk.length
      hash.update(chunk)
    })
    upstreamReq!.on('end', () => upstreamRes!.end(JSON.stringify({ received, sha256: hash.digest('hex') })))
    upstreamReq!.resume()

    const result = await reply
    expect(result.status).toBe(200)
    expect(JSON.parse(result.body.toString())).toEqual({ received: payload.length, sha256: sha256(payload) })
  })

  it('passes small bodies of any bytes unchanged, whole or in chunks, at and around the string-write size', async () => {
    // Every byte value, so a body written as latin1 text would show any byte that did not survive.
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 128) % 256))
    const bodies = new Map([
      ['/one', bytes(1)],
      ['/256', bytes(256)],
      ['/512', bytes(512)],
      ['/513', bytes(513)],
      ['/utf8', Buffer.from('[{"name":"Zoë ✓ 🚀"}]')],
    ])
    const upstream = await startUpstream(async (req, res) => {
      if (req.url === '/chunks') {
        // Two chunks by Content-Length: the last one is small, the head already sent.
        const body = bytes(300)
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': '300' })
        res.write(body.subarray(0, 200))
        await sleep(20)
        res.end(body.subarray(200))
        return
      }
      const body = bodies.get(req.url!)!
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(body.length),
      })
      res.end(body)
    })
    const gw = await startGateway(upstream.url)
    for (const [path, body] of [...bodies, ['/chunks', bytes(300)] as const]) {
      const got = await send(gw.port, { path })
      expect({
        path,
        status: got.status,
        length: headerValues(got.rawHeaders, 'content-length'),
        body: got.body.toString('hex'),
      }).toEqual({ path, status: 200, length: [String(body.length)], body: body.toString('hex') })
    }
  })

  it('streams a 50 MB download byte-identical and pauses the upstream while the client does not read', async () => {
    const payload = randomBytes(50 * MB)
    let sent = 0
    const upstream = await startUpstream(async (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/csv', 'Content-Length': String(payload.length) })
      for (let offset = 0; offset < payload.length; offset += 64 * 1024) {
        const chunk = payload.subarray(offset, offset + 64 * 1024)
        sent += chunk.length
        if (!res.write(chunk)) await once(res, 'drain')
      }
      res.end()
    })
    const gw = await startGateway(upstream.url)

    const chunks: Buffer[] = []
    const done = new Promise<void>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/big.csv', agent: false }, (res) => {
        res.once('data', (first: Buffer) => {
          chunks.push(first)
          res.pause()
          void (async () => {
            const stalledAt = await settledValue(() => sent)
            // The upstream waits for drain: the gateway holds no more than socket buffers.
            expect(stalledAt).toBeLessThan(25 * MB)
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', resolve)
            res.resume()
          })().catch(reject)
        })
      })
      req.on('error', reject)
      req.end()
    })
    await done
    const body = Buffer.concat(chunks)
    expect(body.length).toBe(payload.length)
    expect(sha256(body)).toBe(sha256(payload))
    await gw.settled(1)
    expect(gw.outcomes).toEqual([{ status: 200, upstreamMs: expect.any(Number), clientAborted: false }])
  })
})

// --- client disconnects --------------------------------------------------------------------------

describe('forward: a client that leaves aborts the upstream request', () => {
  it('mid-upload: the upstream sees its request aborted', async () => {
    let upstreamReceived = 0
    const upstreamSaw = deferred<{ complete: boolean; destroyed: boolean }>()
    const upstream = await startUpstream((req) => {
      req.on('data', (chunk: Buffer) => {
        upstreamReceived += chunk.length
      })
      req.on('close', () => upstreamSaw.resolve({ complete: req.complete, destroyed: req.destroyed }))
    })
    const gw = await startGateway(upstream.url)

    const req = httpRequest({
      host: '127.0.0.1',
      port: gw.port,
      method: 'POST',
      path: '/todos',
      headers: { 'content-length': String(10 * MB) },
      agent: false,
    })
    req.on('error', () => {})
    req.write(Buffer.alloc(MB))
    await expect.poll(() => upstreamReceived).toBeGreaterThan(0)
    req.destroy()

    expect(await upstreamSaw.promise).toEqual({ complete: false, destroyed: true })
    await gw.settled(1)
    expect(gw.failures).toEqual([])
    expect(gw.outcomes).toEqual([{ status: 499, upstreamMs: expect.any(Number), clientAborted: true }])
  })

  it('while waiting for the upstream answer: the upstream sees the connection close', async () => {
    let upstreamReq: IncomingMessage | null = null
    const upstream = await startUpstream((req) => {
      upstreamReq = req // never answers
    })
    const gw = await startGateway(upstream.url)
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/slow', agent: false })
    req.on('error', () => {})
    req.end()
    await expect.poll(() => upstreamReq !== null).toBe(true)
    const closed = once(upstreamReq!.socket, 'close')
    req.destroy()
    await closed
    await gw.settled(1)
    expect(gw.outcomes).toEqual([{ status: 499, upstreamMs: expect.any(Number), clientAborted: true }])
  })

  it('mid-download: the upstream response is closed before it finished', async () => {
    let written = 0
    const upstreamClosed = deferred<{ finished: boolean }>()
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      const timer = setInterval(() => {
        written++
        res.write('row\n')
      }, 10)
      res.on('close', () => {
        clearInterval(timer)
        upstreamClosed.resolve({ finished: res.writableFinished })
      })
    })
    const gw = await startGateway(upstream.url)
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/stream', agent: false }, (res) => {
      res.once('data', () => req.destroy())
      res.on('error', () => {})
    })
    req.on('error', () => {})
    req.end()
    expect(await upstreamClosed.promise).toEqual({ finished: false })
    expect(written).toBeGreaterThan(0)
    await gw.settled(1)
    expect(gw.outcomes).toEqual([{ status: 200, upstreamMs: expect.any(Number), clientAborted: true }])
    expect(await counterValues(gw.metrics)).toEqual({})
  })
})

// --- upstream failures ----------------------------------------------------------------------------

describe('forward: upstream failures', () => {
  it('answers 502 GW401 when the upstream refuses the connection', async () => {
    const gw = await startGateway(`http://127.0.0.1:${await deadPort()}`)
    const reply = await send(gw.port, { path: '/todos' })
    expect(reply.status).toBe(502)
    expect(reply.body.toString()).toBe(
      '{"code":"GW401","details":null,"hint":null,"message":"Upstream is unreachable"}',
    )
    expect(headerValues(reply.rawHeaders, 'proxy-status')).toEqual(['postgrest-gateway; error=GW401'])
    await gw.settled(1)
    const err = gw.failures[0] as GatewayError
    expect(err).toBeInstanceOf(GatewayError)
    expect([err.kind, err.reason?.startsWith('ECONNREFUSED: ')]).toEqual(['UpstreamUnreachable', true])
    expect(await counterValues(gw.metrics)).toEqual({ connect: 1 })
  })

  it('answers 504 GW402 when the upstream sends no headers within timeoutMs', async () => {
    const upstream = await startUpstream(() => {}) // never answers
    const gw = await startGateway(upstream.url, { timeoutMs: 200 })
    const started = performance.now()
    const reply = await send(gw.port, { path: '/slow' })
    const elapsed = performance.now() - started
    expect(reply.status).toBe(504)
    expect(reply.body.toString()).toBe(
      '{"code":"GW402","details":null,"hint":null,"message":"Upstream timed out"}',
    )
    expect(elapsed).toBeGreaterThanOrEqual(190)
    expect(elapsed).toBeLessThan(2_000)
    await gw.settled(1)
    expect((gw.failures[0] as GatewayError).reason).toBe('UND_ERR_HEADERS_TIMEOUT: Headers Timeout Error')
    expect(await counterValues(gw.metrics)).toEqual({ timeout: 1 })
  })

  it('cuts the client connection when the upstream resets mid-response (no hang, no fake end)', async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' })
      res.write('[{"id":1},', () => setTimeout(() => res.socket!.destroy(), 20))
    })
    const gw = await startGateway(upstream.url)
    const outcome = await new Promise<{ status: number; received: string; error: string }>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/todos', agent: false }, (res) => {
        let received = ''
        res.on('data', (c: Buffer) => {
          received += c.toString()
        })
        res.on('error', (err) => resolve({ status: res.statusCode!, received, error: err.message }))
        res.on('end', () => resolve({ status: res.statusCode!, received, error: 'none' }))
      })
      req.end()
    })
    expect(outcome).toEqual({ status: 200, received: '[{"id":1},', error: 'aborted' })
    await gw.settled(1)
    const err = gw.failures[0] as GatewayError
    expect([err.kind, err.status]).toEqual(['UpstreamFailed', 502])
    expect(await counterValues(gw.metrics)).toEqual({ reset: 1 })
  })

  it('never sends a failed POST twice', async () => {
    let requests = 0
    const upstream = await startUpstream((req, res) => {
      requests++
      // The first request leaves a kept-alive connection in the pool; the POST on it is cut.
      if (requests === 1) res.end('ok')
      else req.socket.destroy()
    })
    const gw = await startGateway(upstream.url, { connections: 1 })
    expect((await send(gw.port, { path: '/todos' })).status).toBe(200)
    const reply = await send(gw.port, { method: 'POST', path: '/todos', body: '{"title":"once"}' })
    expect(reply.status).toBe(502)
    expect(reply.body.toString()).toBe(
      '{"code":"GW403","details":null,"hint":null,"message":"Upstream connection failed"}',
    )
    await sleep(200)
    expect(requests).toBe(2)
  })

  it('reports whether the upstream accepts TCP connections', async () => {
    const upstream = await startUpstream((_req, res) => res.end())
    const live = await startGateway(upstream.url)
    const dead = await startGateway(`http://127.0.0.1:${await deadPort()}`)
    expect(await live.forwarder.isReachable()).toBe(true)
    expect(await dead.forwarder.isReachable()).toBe(false)
  })
})
