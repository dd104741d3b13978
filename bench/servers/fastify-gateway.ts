// Benchmarks, load: what users would write instead: fastify + @fastify/jwt verify + re-sign + @fastify/reply-from.
import fastifyJwt from '@fastify/jwt'
import replyFrom from '@fastify/reply-from'
import Fastify from 'fastify'

const app = Fastify({ logger: { level: 'info' } })
await app.register(fastifyJwt, { secret: process.env['INBOUND_SECRET'] ?? '', namespace: 'inbound' })
await app.register(fastifyJwt, { secret: process.env['UPSTREAM_SECRET'] ?? '', namespace: 'upstream' })
await app.register(replyFrom, {
  base: process.env['UPSTREAM_URL'] ?? 'http://127.0.0.1:3000',
  undici: { connections: Number(process.env['CONNECTIONS'] ?? 128), pipelining: 1 },
})

interface Namespaced {
  inboundJwtVerify<T>(): Promise<T>
}
const signer = (app as unknown as { jwt: Record<string, { sign(payload: object): string }> }).jwt['upstream']!

app.all('/*', async (request, reply) => {
  // The same decision as the gateway without a claims database: verify, set the role, re-sign.
  const claims = await (request as unknown as Namespaced).inboundJwtVerify<Record<string, unknown>>()
  const minted = signer.sign({ ...claims, role: 'authenticated' })
  return reply.from(request.url, {
    rewriteRequestHeaders: (_req, headers) => ({ ...headers, authorization: `Bearer ${minted}` }),
  })
})

const address = await app.listen({ port: Number(process.env['PORT'] ?? 0), host: '127.0.0.1' })
process.send?.({ port: Number(new URL(address).port) })

// A normal exit on SIGTERM (lets --cpu-prof write its profile).
process.on('SIGTERM', () => process.exit(0))
