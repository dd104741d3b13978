// Admin listener: /live, /ready and /metrics; nothing else is exposed there.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Metrics } from './metrics.js'

export interface ReadinessCheck {
  readonly name: string
  /** True when this part of the gateway is ready to serve. */
  check(): boolean | Promise<boolean>
}

export interface AdminServerOptions {
  readonly metrics: Metrics
  /**
   * The checks `/ready` runs, asked on every probe: a configuration reload may add or drop one
   * (the database check exists only with a database URL).
   */
  readonly checks: () => readonly ReadinessCheck[]
  /** True from the first moment of a shutdown: `/ready` answers 503 naming the `shutdown` check. */
  readonly isShuttingDown: () => boolean
}

export interface AdminServer {
  readonly server: Server
}

const JSON_TYPE = 'application/json; charset=utf-8'

/** The readiness verdict: every check by name, and the names that failed, in check order. */
export interface Readiness {
  readonly status: 'ready' | 'not ready'
  readonly failing: readonly string[]
  readonly checks: Readonly<Record<string, boolean>>
}

async function passes(check: ReadinessCheck): Promise<boolean> {
  try {
    return (await check.check()) === true
  } catch {
    // A check that throws is a failing check, never a crashed probe.
    return false
  }
}

function send(res: ServerResponse, status: number, body: string, headers?: Record<string, string>): void {
  res.writeHead(status, { 'content-type': JSON_TYPE, 'cache-control': 'no-store', ...headers })
  res.end(body)
}

/**
 * The admin listener (DESIGN.md "Operations"): `GET /live` 200 while the process serves, `GET
 * /ready` 200 or 503 with {@link Readiness} as JSON, `GET /metrics` in Prometheus text; any other
 * path 404 and any other method 405, with a JSON body. Liveness never depends on a check.
 */
export function createAdminServer(options: AdminServerOptions): AdminServer {
  const { metrics } = options

  async function readiness(): Promise<Readiness> {
    const checks = options.checks()
    const outcomes = await Promise.all(checks.map(passes))
    const results: Record<string, boolean> = { shutdown: !options.isShuttingDown() }
    for (let i = 0; i < checks.length; i++) results[checks[i]!.name] = outcomes[i] === true
    const failing = Object.keys(results).filter((name) => !results[name])
    return { status: failing.length === 0 ? 'ready' : 'not ready', failing, checks: results }
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? ''
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (path !== '/live' && path !== '/ready' && path !== '/metrics') {
      send(res, 404, '{"status":"not found"}')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, '{"status":"method not allowed"}', { allow: 'GET, HEAD' })
      return
    }
    if (path === '/live') {
      send(res, 200, '{"status":"live"}')
      return
    }
    if (path === '/ready') {
      readiness().then(
        (verdict) => send(res, verdict.failing.length === 0 ? 200 : 503, JSON.stringify(verdict)),
        () => send(res, 503, '{"status":"not ready","failing":[],"checks":{}}'),
      )
      return
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' })
        res.end(text)
      },
      () => send(res, 500, '{"status":"metrics failed"}'),
    )
  }

  return { server: createServer(handle) }
}
