// Benchmarks, load: the minimal upstream every proxy forwards to (node:http, a small JSON body), in its own process.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const BODY = Buffer.from('[{"id":1,"name":"widget","price":9.5,"in_stock":true}]')
const HEADERS = ['Content-Type', 'application/json; charset=utf-8', 'Content-Length', String(BODY.length)]

const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  // Read the request to its end (a GET has none) so the connection is reused.
  req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
})
server.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port })
})

// A normal exit on SIGTERM (lets --cpu-prof write its profile).
process.on('SIGTERM', () => process.exit(0))
