// Assembles the stages from one Config into the proxy and admin servers; no I/O at import time.
import { createServer, type Server, STATUS_CODES } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { createVerifier, type KeySource, parseKeySet } from './auth/index.js'
import { combineKeySets, createRemoteKeySet, type RemoteKeySet } from './auth/remote-key-set.js'
import { type ClaimsStore, createClaimsStore } from './claims/index.js'
import type { Config } from './config/types.js'
import { errorResponse, GatewayError } from './errors/index.js'
import { createHook } from './hook/index.js'
import { createMinter, importSigningKey, type Minter } from './mint/index.js'
import { createAdminServer, type ReadinessCheck } from './observability/admin-server.js'
import { createLogger } from './observability/logger.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { createPipeline, type Pipeline } from './pipeline.js'
import { createForwarder, type Forwarder } from './proxy/index.js'
import { createRoleMapper } from './role/index.js'

export interface GatewayDeps {
  readonly logger?: Logger
  readonly metrics?: Metrics
}

export interface Gateway {
  readonly server: Server
  readonly admin: Server
  readonly logger: Logger
  readonly metrics: Metrics
  readonly minter: Minter
  readonly pipeline: Pipeline
  /** Starts background work (key fetches, the claims listener) and both listeners. */
  listen(): Promise<{ port: number; adminPort: number }>
  /** Graceful: not ready at once, keep serving for the delay, stop accepting, drain, close. */
  shutdown(): Promise<void>
  /** Immediate: closes everything now. */
  close(): Promise<void>
  readonly shuttingDown: boolean
}

const UPSTREAM_PROBE_INTERVAL_MS = 1000

function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve()
    server.close(() => resolve())
    server.closeIdleConnections()
  })
}

type ClosableKeySource = KeySource & { readonly close?: () => void }

/** Inbound keys: the static `jwt-secret`, a remote JWKS, or both (static keys answer first). */
function createKeys(config: Config, metrics: Metrics, logger: Logger): ClosableKeySource | null {
  const { jwt } = config
  const staticKeys = jwt.secret === null ? null : parseKeySet(jwt.secret, { isBase64: jwt.secretIsBase64 })
  for (const skipped of staticKeys?.skipped ?? []) {
    logger.warn(
      { index: skipped.index, kid: skipped.kid, reason: skipped.reason },
      'GATEWAY_JWT_SECRET: key skipped',
    )
  }
  if (jwt.jwksUrl === null) return staticKeys
  const remote: RemoteKeySet = createRemoteKeySet({
    url: jwt.jwksUrl,
    maxAgeSeconds: jwt.jwksMaxAgeSeconds,
    cooldownSeconds: jwt.jwksCooldownSeconds,
    timeoutMs: jwt.jwksTimeoutMs,
    metrics,
    logger,
  })
  if (staticKeys === null) return remote
  return Object.assign(combineKeySets(staticKeys, remote), { close: () => remote.close() })
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

/** Builds a gateway from a validated Config. Throws an Error naming the option for unusable keys. */
export async function createGateway(config: Config, deps: GatewayDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger(config.log)
  const metrics = deps.metrics ?? createMetrics()

  const keys = createKeys(config, metrics, logger)
  const verifier = createVerifier({
    keys,
    aud: config.jwt.aud,
    iss: config.jwt.iss,
    clockSkewSeconds: config.jwt.clockSkewSeconds,
    cacheMaxEntries: config.jwt.cacheMaxEntries,
    metrics,
  })
  const signingKey = await importSigningKey(config.upstream.jwtSecret, {
    isBase64: config.upstream.jwtSecretIsBase64,
    kid: config.mint.kid,
  })
  const minter = createMinter({
    key: signingKey,
    mint: config.mint,
    metrics,
    onOversize: (bytes) =>
      logger.warn({ bytes, limit: config.mint.warnBytes }, 'minted token exceeds the size warning'),
  })
  const roles = createRoleMapper(config.role, metrics)
  const claims: ClaimsStore | null =
    config.db.url === null
      ? null
      : createClaimsStore({ db: config.db, claims: config.claims, metrics, logger })
  const forwarder: Forwarder = createForwarder({
    url: config.upstream.url,
    timeoutMs: config.upstream.timeoutMs,
    bodyTimeoutMs: config.upstream.bodyTimeoutMs,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    connections: config.upstream.connections,
    trustForwardedHeaders: config.server.trustForwardedHeaders,
    metrics,
  })
  const hook = createHook({ config: config.hook, dbUrl: config.db.url, metrics, logger })
  const pipeline = createPipeline({
    anonymous: config.anonymous,
    anonRole: config.role.anonRole,
    hasKeys: keys !== null,
    verifier,
    claims,
    hook,
    roles,
    minter,
    forwarder,
    logger,
    metrics,
  })

  let shuttingDown = false
  const server = createServer(
    {
      maxHeaderSize: config.server.maxHeaderBytes,
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: config.server.requestTimeoutMs,
      keepAliveTimeout: config.server.keepAliveTimeoutMs,
    },
    (req, res) => {
      // While draining, ask keep-alive clients to reconnect (to another replica).
      if (shuttingDown) res.setHeader('connection', 'close')
      pipeline.handle(req, res)
    },
  )
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy()
    const failure = new GatewayError(
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 'HeadersTooLarge'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 'RequestTimeout'
          : 'MalformedRequest',
    )
    const { status, headers, body } = errorResponse(failure)
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`
    socket.end(`${head}connection: close\r\n\r\n${body}`)
  })

  let upstreamReachable = false
  let lastProbe = 0
  const checks: ReadinessCheck[] = [
    { name: 'keys', check: () => keys === null || keys.ready },
    {
      name: 'upstream',
      async check() {
        const now = Date.now()
        if (now - lastProbe >= UPSTREAM_PROBE_INTERVAL_MS) {
          lastProbe = now
          upstreamReachable = await forwarder.isReachable()
        }
        return upstreamReachable
      },
    },
  ]
  if (claims !== null) checks.push({ name: 'database', check: () => claims.listening })
  const admin = createAdminServer({ metrics, checks, isShuttingDown: () => shuttingDown }).server

  async function closeAll(): Promise<void> {
    server.closeAllConnections()
    await Promise.allSettled([closeServer(server), closeServer(admin)])
    admin.closeAllConnections()
    keys?.close?.()
    await Promise.allSettled([forwarder.close(), claims?.close(), hook?.close(), verifier.close()])
  }

  return {
    server,
    admin,
    logger,
    metrics,
    minter,
    pipeline,
    get shuttingDown() {
      return shuttingDown
    },
    async listen() {
      if (claims !== null) await claims.start()
      const port = await listenOn(server, config.server.port, config.server.host)
      const adminPort = await listenOn(admin, config.server.adminPort, config.server.adminHost)
      logger.info({ port, adminPort }, 'gateway listening')
      return { port, adminPort }
    },
    async shutdown() {
      if (shuttingDown) return
      shuttingDown = true
      logger.info({ delayMs: config.shutdown.delayMs }, 'shutting down: not ready, still serving')
      await sleep(config.shutdown.delayMs)
      const closing = closeServer(server)
      const deadline = Date.now() + config.shutdown.deadlineMs
      while (pipeline.inFlight > 0 && Date.now() < deadline) await sleep(25)
      if (pipeline.inFlight > 0) logger.warn({ inFlight: pipeline.inFlight }, 'shutdown deadline reached')
      await closeAll()
      await closing
      logger.info('shutdown complete')
    },
    close: closeAll,
  }
}
