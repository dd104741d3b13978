// Security test support: the real gateway (createGateway) in this process, in front of a local upstream that records what reached it.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { Writable } from 'node:stream'
import { type Config, loadConfig } from '../../../src/config/index.js'
import { createGateway, type Gateway } from '../../../src/gateway.js'
import { createLogger } from '../../../src/observability/logger.js'

/** One request as the upstream (standing for PostgREST) received it. */
export interface UpstreamRequest {
  readonly method: string
  readonly url: string
  /** Lower-cased names, repeated values in order. */
  readonly headers: Readonly<Record<string, readonly string[]>>
  readonly authorization: string | null
  readonly bodyLength: number
  readonly bodySha256: string
}

export interface RecordingUpstream {
  readonly url: string
  readonly requests: UpstreamRequest[]
  readonly server: Server
  close(): Promise<void>
}

/** The minted token's payload, decoded (no verification: the upstream key is the test's own). */
export function payloadOf(authorization: string | null): Record<string, unknown> | null {
  if (authorization === null) return null
  const token = authorization.slice('Bearer '.length)
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >
}

/**
 * An upstream that records every request (after reading its whole body) and answers 200 with
 * `{"ok":true}`; `handler` may answer instead (return true when it did).
 */
export async function startRecordingUpstream(
  handler?: (req: IncomingMessage, res: ServerResponse, record: UpstreamRequest) => boolean,
): Promise<RecordingUpstream> {
  const requests: UpstreamRequest[] = []
  const server = createServer(async (req, res) => {
    const hash = createHash('sha256')
    let length = 0
    try {
      for await (const chunk of req) {
        hash.update(chunk as Buffer)
        length += (chunk as Buffer).length
      }
    } catch {
      return
    }
    const headers: Record<string, string[]> = Object.create(null)
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!.toLowerCase()
      const list = headers[name]
      if (list === undefined) headers[name] = [req.rawHeaders[i + 1]!]
      else list.push(req.rawHeaders[i + 1]!)
    }
    const record: UpstreamRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers,
      authorization: headers['authorization']?.[0] ?? null,
      bodyLength: length,
      bodySha256: hash.digest('hex'),
    }
    requests.push(record)
    if (handler?.(req, res, record) === true) return
    const body = JSON.stringify({ ok: true, bodyLength: length, bodySha256: record.bodySha256 })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    server,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** The inbound HS256 secret of every in-process gateway here (PostgREST's minimum is 32 chars). */
export const INBOUND_SECRET = 'inbound-secret-inbound-secret-0123456789'
/** The key minted tokens are signed with. */
export const UPSTREAM_SECRET = 'upstream-secret-upstream-secret-0123456789'

export interface InProcessGateway {
  readonly gateway: Gateway
  readonly config: Config
  readonly url: string
  readonly port: number
  /** Every log line the gateway wrote, as text (for "no secret in logs" checks). */
  logs(): string
  close(): Promise<void>
}

/**
 * Builds the configuration from GATEWAY_* variables exactly as the process entry does, and runs
 * the real gateway on 127.0.0.1, port 0, logging into memory.
 */
export async function startInProcessGateway(
  upstreamUrl: string,
  env: Record<string, string> = {},
): Promise<InProcessGateway> {
  const config = loadConfig({
    argv: [],
    env: {
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: '0',
      GATEWAY_ADMIN_HOST: '127.0.0.1',
      GATEWAY_ADMIN_PORT: '0',
      GATEWAY_UPSTREAM_URL: upstreamUrl,
      GATEWAY_JWT_SECRET: INBOUND_SECRET,
      GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
      GATEWAY_LOG_LEVEL: 'info',
      ...env,
    },
  })
  let logText = ''
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (logText.length < 4 * 1024 * 1024) logText += chunk.toString('utf8')
      callback()
    },
  })
  const gateway = await createGateway(config, { logger: createLogger(config.log, sink) })
  const { port } = await gateway.listen()
  return {
    gateway,
    config,
    url: `http://127.0.0.1:${port}`,
    port,
    logs: () => logText,
    close: () => gateway.close(),
  }
}

/** One HTTP answer read whole. */
export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: string
}

/** GET through the gateway with the given headers (undici fetch), bounded in time. */
export async function get(
  url: string,
  headers: Record<string, string> = {},
  timeoutMs = 5000,
): Promise<Answer> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) })
  return { status: res.status, headers: res.headers, body: await res.text() }
}

/**
 * Sends `text` as it is on a fresh TCP connection and returns everything the server wrote until it
 * closed the connection (or `timeoutMs` passed: then `timedOut` is true and the socket is destroyed).
 */
export function rawExchange(
  port: number,
  text: string | Buffer,
  timeoutMs = 5000,
): Promise<{ response: string; timedOut: boolean; elapsedMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now()
    const socket = connect({ host: '127.0.0.1', port })
    let response = ''
    let settled = false
    const finish = (timedOut: boolean): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ response, timedOut, elapsedMs: Date.now() - started })
    }
    const timer = setTimeout(() => finish(true), timeoutMs)
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      response += chunk
    })
    socket.on('error', () => finish(false))
    socket.on('close', () => finish(false))
    socket.write(text)
  })
}

/** Status line, lower-cased headers and body of the first response in a raw exchange. */
export function parseRawResponse(response: string): {
  status: number
  headers: Record<string, string>
  body: string
} {
  const end = response.indexOf('\r\n\r\n')
  const head = end === -1 ? response : response.slice(0, end)
  const lines = head.split('\r\n')
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] ??= line.slice(colon + 1).trim()
  }
  let body = end === -1 ? '' : response.slice(end + 4)
  const length = headers['content-length']
  if (length !== undefined) body = body.slice(0, Number(length))
  return { status, headers, body }
}
