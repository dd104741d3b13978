// Benchmarks, load: the floor for any Node proxy: node:http + one undici Pool.stream(), no auth, no logs, no metrics.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Dispatcher, Pool } from 'undici'

const pool = new Pool(process.env['UPSTREAM_URL'] ?? 'http://127.0.0.1:3000', {
  connections: Number(process.env['CONNECTIONS'] ?? 128),
  pipelining: 1,
})
const HOP = new Set(['connection', 'keep-alive', 'host', 'transfer-encoding', 'upgrade', 'te', 'trailer'])

const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const raw = req.rawHeaders
  const headers: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!)
  }
  pool
    .stream(
      {
        path: req.url ?? '/',
        method: req.method as Dispatcher.HttpMethod,
        headers,
        opaque: res,
        responseHeaders: 'raw',
      },
      ({ statusCode, headers: upstream, opaque }) => {
        const out = opaque as typeof res
        out.writeHead(statusCode, upstream as unknown as string[])
        return out
      },
    )
    .catch(() => {
      if (!res.headersSent) res.writeHead(502).end()
      else res.destroy()
    })
})
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port })
})

// A normal exit on SIGTERM (lets --cpu-prof write its profile).
process.on('SIGTERM', () => process.exit(0))
