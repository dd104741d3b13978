// Admin listener: /live, /ready and /metrics; nothing else is exposed there.
import { createServer, type Server } from 'node:http'
import type { Metrics } from './metrics.js'

export interface ReadinessCheck {
  readonly name: string
  /** True when this part of the gateway is ready to serve. */
  check(): boolean | Promise<boolean>
}

export interface AdminServer {
  readonly server: Server
}

const JSON_TYPE = 'application/json; charset=utf-8'

export function createAdminServer(options: {
  metrics: Metrics
  checks: readonly ReadinessCheck[]
  isShuttingDown: () => boolean
}): AdminServer {
  const { metrics, checks } = options

  async function readiness(): Promise<{ ready: boolean; body: string }> {
    const results: Record<string, boolean> = { shutdown: !options.isShuttingDown() }
    const outcomes = await Promise.all(
      checks.map(async (c) => {
        try {
          return await c.check()
        } catch {
          return false
        }
      }),
    )
    checks.forEach((c, i) => {
      results[c.name] = outcomes[i] === true
    })
    const ready = Object.values(results).every(Boolean)
    return { ready, body: JSON.stringify({ status: ready ? 'ready' : 'not ready', checks: results }) }
  }

  const server = createServer((req, res) => {
    const path = req.url === undefined ? '' : req.url.split('?', 1)[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': JSON_TYPE })
        .end('{"status":"method not allowed"}')
      return
    }
    if (path === '/live') {
      res.writeHead(200, { 'content-type': JSON_TYPE }).end('{"status":"live"}')
      return
    }
    if (path === '/ready') {
      readiness().then(
        ({ ready, body }) => res.writeHead(ready ? 200 : 503, { 'content-type': JSON_TYPE }).end(body),
        () => res.writeHead(503, { 'content-type': JSON_TYPE }).end('{"status":"not ready"}'),
      )
      return
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500, { 'content-type': JSON_TYPE }).end('{"status":"metrics failed"}'),
      )
      return
    }
    res.writeHead(404, { 'content-type': JSON_TYPE }).end('{"status":"not found"}')
  })
  return { server }
}
