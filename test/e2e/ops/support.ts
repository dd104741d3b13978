// Operations e2e support: Prometheus text scraping, JSON log lines, and a JWKS server on 127.0.0.1 that rotates keys.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export const INBOUND = 'inbound-secret-of-the-identity-provider-32+'
export const UPSTREAM = 'secret-shared-by-gateway-and-postgrest-32+'

export interface Series {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** Every sample of a `/metrics` answer (Prometheus text format 0.0.4). */
export async function scrape(adminUrl: string): Promise<Series[]> {
  const res = await fetch(`${adminUrl}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  const series: Series[] = []
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = LINE.exec(line)
    if (match === null) throw new Error(`unparsable metrics line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) labels[name!] = value!
    series.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return series
}

/** Sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function total(series: readonly Series[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const s of series) {
    if (s.name !== name) continue
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}

/** pino JSON lines of a captured stream (other lines are skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // a partial line at the end of the capture
    }
  }
  return lines
}

export async function waitUntil(
  what: string,
  condition: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export async function readyStatus(adminUrl: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${adminUrl}/ready`)
  return { status: res.status, body: await res.json() }
}

export interface JwksServer {
  readonly url: string
  /** The keys served now (public JWKs); replace to rotate or revoke. */
  keys: object[]
  /** `Cache-Control` of the answers. */
  cacheControl: string
  /** Fetches answered so far. */
  readonly fetches: number
  /** Stops answering (connections refused) until `up()`. */
  down(): Promise<void>
  up(): Promise<void>
  close(): Promise<void>
}

/** A JWKS endpoint on 127.0.0.1 whose keys a test changes between fetches. */
export async function startJwksServer(keys: object[], cacheControl = 'max-age=1'): Promise<JwksServer> {
  let fetches = 0
  const state = { keys, cacheControl }
  let server: Server
  let port = 0
  const listen = async () => {
    server = createServer((_req, res) => {
      fetches++
      const body = JSON.stringify({ keys: state.keys })
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': state.cacheControl })
      res.end(body)
    })
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as AddressInfo).port
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  await listen()
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get keys() {
      return state.keys
    },
    set keys(value) {
      state.keys = value
    },
    get cacheControl() {
      return state.cacheControl
    },
    set cacheControl(value) {
      state.cacheControl = value
    },
    get fetches() {
      return fetches
    },
    down: stop,
    up: listen,
    close: async () => {
      if (server.listening) await stop()
    },
  }
}
