// Assembles the stages from one Config into the proxy and admin servers; swaps them on a reload; no I/O at import time.
import { createServer, type Server, type ServerResponse, STATUS_CODES } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { createVerifier, type KeySource, parseKeySet, type Verifier } from './auth/index.js'
import { combineKeySets, createRemoteKeySet, type RemoteKeySet } from './auth/remote-key-set.js'
import { type ClaimsStore, createClaimsStore } from './claims/index.js'
import type { Config } from './config/types.js'
import { errorResponse, GatewayError } from './errors/index.js'
import { createHook } from './hook/index.js'
import { createMinter, importSigningKey, type Minter } from './mint/index.js'
import { createAdminServer, type ReadinessCheck } from './observability/admin-server.js'
import { createLogger, flushLogger } from './observability/logger.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { createPipeline, type Pipeline } from './pipeline.js'
import { createForwarder, type Forwarder } from './proxy/index.js'
import { createRoleMapper } from './role/index.js'

export interface GatewayDeps {
  readonly logger?: Logger
  readonly metrics?: Metrics
}

/** What a reload did: `applied`, or `refused` with a one-line reason naming the option. */
export type ReloadResult =
  | { readonly outcome: 'applied' }
  | { readonly outcome: 'refused'; readonly reason: string }

export interface Gateway {
  readonly server: Server
  readonly admin: Server
  readonly logger: Logger
  readonly metrics: Metrics
  /** The stages serving new requests now (replaced by a reload). */
  readonly minter: Minter
  readonly pipeline: Pipeline
  /** The configuration serving new requests now. */
  readonly config: Config
  /** Starts background work (key fetches, the claims listener) and both listeners. */
  listen(): Promise<{ port: number; adminPort: number }>
  /**
   * Builds every stage again from `next` and swaps them in at once; requests already running
   * finish on the old stages, whose pools and listener close once they have drained. Refused
   * (the running stages stay) when `next` changes a setting a running process cannot change, or
   * when its keys, roles or database cannot be used. Never throws.
   */
  reload(next: Config): Promise<ReloadResult>
  /** Graceful: not ready at once, keep serving for the delay, stop accepting, drain, close. */
  shutdown(): Promise<void>
  /** Immediate: closes everything now. */
  close(): Promise<void>
  readonly shuttingDown: boolean
}

const UPSTREAM_PROBE_INTERVAL_MS = 1000
const DRAIN_POLL_MS = 25

/**
 * Settings bound to the listeners or to the log destination, which a reload cannot move: a new
 * value refuses the reload (restart the process instead).
 */
const RESTART_ONLY: readonly [string, (c: Config) => unknown][] = [
  ['server.host (GATEWAY_HOST)', (c) => c.server.host],
  ['server.port (GATEWAY_PORT)', (c) => c.server.port],
  ['server.adminHost (GATEWAY_ADMIN_HOST)', (c) => c.server.adminHost],
  ['server.adminPort (GATEWAY_ADMIN_PORT)', (c) => c.server.adminPort],
  ['server.maxHeaderBytes (GATEWAY_MAX_HEADER_BYTES)', (c) => c.server.maxHeaderBytes],
  ['log.pretty (GATEWAY_LOG_PRETTY)', (c) => c.log.pretty],
]

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

/** How often Node sweeps for timed-out request heads: a quarter of the limit, between 50 ms and 1 s. */
function connectionsCheckingInterval(headersTimeoutMs: number): number {
  return Math.min(1000, Math.max(50, Math.floor(headersTimeoutMs / 4)))
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

type ClosableKeySource = KeySource & { readonly close?: () => void }

/** Everything built from one Config that serves requests: swapped whole on a reload. */
interface Stages {
  readonly config: Config
  readonly keys: ClosableKeySource | null
  /** The remote key set inside `keys`, kept across reloads while its settings do not change. */
  readonly remote: RemoteKeySet | null
  readonly verifier: Verifier
  readonly minter: Minter
  readonly claims: ClaimsStore | null
  readonly forwarder: Forwarder
  readonly hook: { close(): Promise<void> } | null
  readonly pipeline: Pipeline
  readonly checks: readonly ReadinessCheck[]
}

function sameRemoteSettings(a: Config, b: Config): boolean {
  return (
    a.jwt.jwksUrl === b.jwt.jwksUrl &&
    a.jwt.jwksMaxAgeSeconds === b.jwt.jwksMaxAgeSeconds &&
    a.jwt.jwksCooldownSeconds === b.jwt.jwksCooldownSeconds &&
    a.jwt.jwksTimeoutMs === b.jwt.jwksTimeoutMs
  )
}

/**
 * Builds the stages of one Config. Checks that can fail (keys, roles) run before anything opens
 * a connection or a timer; on a later failure whatever was opened is closed again.
 * `previous` lends its remote key set when the JWKS settings are unchanged, so a reload keeps the
 * last good set (and fetches nothing) rather than starting from an empty one.
 */
async function buildStages(
  config: Config,
  metrics: Metrics,
  logger: Logger,
  previous: Stages | null,
): Promise<Stages> {
  const { jwt } = config
  const staticKeys = jwt.secret === null ? null : parseKeySet(jwt.secret, { isBase64: jwt.secretIsBase64 })
  const signingKey = await importSigningKey(config.upstream.jwtSecret, {
    isBase64: config.upstream.jwtSecretIsBase64,
    kid: config.mint.kid,
  })
  const roles = createRoleMapper(config.role, metrics)
  for (const skipped of staticKeys?.skipped ?? []) {
    logger.warn(
      { index: skipped.index, kid: skipped.kid, reason: skipped.reason },
      'GATEWAY_JWT_SECRET: key skipped',
    )
  }

  let remote: RemoteKeySet | null = null
  if (jwt.jwksUrl !== null) {
    remote =
      previous !== null && previous.remote !== null && sameRemoteSettings(previous.config, config)
        ? previous.remote
        : createRemoteKeySet({
            url: jwt.jwksUrl,
            maxAgeSeconds: jwt.jwksMaxAgeSeconds,
            cooldownSeconds: jwt.jwksCooldownSeconds,
            timeoutMs: jwt.jwksTimeoutMs,
            metrics,
            logger,
          })
  }
  const keys: ClosableKeySource | null =
    remote === null ? staticKeys : staticKeys === null ? remote : combineKeySets(staticKeys, remote)

  const verifier = createVerifier({
    keys,
    aud: jwt.aud,
    iss: jwt.iss,
    clockSkewSeconds: jwt.clockSkewSeconds,
    cacheMaxEntries: jwt.cacheMaxEntries,
    metrics,
  })
  const minter = createMinter({
    key: signingKey,
    mint: config.mint,
    metrics,
    onOversize: (bytes) =>
      logger.warn({ bytes, limit: config.mint.warnBytes }, 'minted token exceeds the size warning'),
  })
  const forwarder: Forwarder = createForwarder({
    url: config.upstream.url,
    timeoutMs: config.upstream.timeoutMs,
    bodyTimeoutMs: config.upstream.bodyTimeoutMs,
    connectTimeoutMs: config.upstream.connectTimeoutMs,
    connections: config.upstream.connections,
    trustForwardedHeaders: config.server.trustForwardedHeaders,
    metrics,
  })
  let claims: ClaimsStore | null = null
  let hook: ReturnType<typeof createHook> = null
  try {
    claims =
      config.db.url === null
        ? null
        : createClaimsStore({ db: config.db, claims: config.claims, metrics, logger })
    hook = createHook({ config: config.hook, dbUrl: config.db.url, metrics, logger })
  } catch (err) {
    if (remote !== null && remote !== previous?.remote) remote.close()
    await Promise.allSettled([forwarder.close(), claims?.close(), verifier.close()])
    throw err
  }
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

  let upstreamReachable = false
  let lastProbe = Number.NEGATIVE_INFINITY
  const checks: ReadinessCheck[] = [
    { name: 'keys', check: () => keys === null || keys.ready },
    {
      name: 'upstream',
      async check() {
        // One probe per interval, however often the kubelet and load balancers ask.
        const now = Date.now()
        if (now - lastProbe >= UPSTREAM_PROBE_INTERVAL_MS) {
          lastProbe = now
          upstreamReachable = await forwarder.isReachable()
        }
        return upstreamReachable
      },
    },
  ]
  if (claims !== null) {
    const store = claims
    checks.push({ name: 'database', check: () => store.listening })
  }
  return { config, keys, remote, verifier, minter, claims, forwarder, hook, pipeline, checks }
}

/** Closes what `stages` opened, except a remote key set that `next` took over. */
async function closeStages(stages: Stages, next: Stages | null): Promise<void> {
  if (stages.remote !== null && stages.remote !== next?.remote) stages.remote.close()
  await Promise.allSettled([
    stages.forwarder.close(),
    stages.claims?.close(),
    stages.hook?.close(),
    stages.verifier.close(),
  ])
}

function restartOnlyChange(running: Config, next: Config): string | null {
  for (const [name, read] of RESTART_ONLY) {
    if (read(running) !== read(next)) return `${name} cannot change without a restart`
  }
  return null
}

/** Builds a gateway from a validated Config. Throws an Error naming the option for unusable keys. */
export async function createGateway(config: Config, deps: GatewayDeps = {}): Promise<Gateway> {
  const logger = deps.logger ?? createLogger(config.log)
  const metrics = deps.metrics ?? createMetrics()

  let current = await buildStages(config, metrics, logger, null)
  /** Stages replaced by a reload whose requests are still running. */
  const retiring = new Set<Stages>()
  let shuttingDown = false
  let listening = false
  let reloading: Promise<ReloadResult> = Promise.resolve({ outcome: 'applied' })

  // gateway_jwks_keys counts every inbound key, static ones included, at scrape time.
  metrics.onCollect(() => metrics.keysetKeys.set(current.keys?.size ?? 0))
  // gateway_requests_in_flight: the pipelines' own counts (current and retiring), read at scrape time.
  metrics.onCollect(() => metrics.inFlight.set(inFlight()))

  const server = createServer(
    {
      maxHeaderSize: config.server.maxHeaderBytes,
      headersTimeout: config.server.headersTimeoutMs,
      requestTimeout: config.server.requestTimeoutMs,
      // Node enforces both timeouts only when it sweeps its connections, by default every 30 s: a
      // slow-header client (slowloris) would hold its socket up to 30 s past the configured limit.
      connectionsCheckingInterval: connectionsCheckingInterval(config.server.headersTimeoutMs),
      keepAliveTimeout: config.server.keepAliveTimeoutMs,
    },
    (req, res) => {
      // While draining, ask keep-alive clients to reconnect (to another replica).
      if (shuttingDown) res.setHeader('connection', 'close')
      // The stable handler: a reload replaces `current`, never the listener or its connections.
      current.pipeline.handle(req, res)
    },
  )
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // The response owed on this connection: when it has started, or belongs to an earlier request
    // that was read whole (pipelining), a 400 written now would land inside it or read as its
    // answer. Close instead, as Node's own handler does. A bad body of the request being read
    // (its response not started) still gets its 400.
    const owed = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
    if (!socket.writable || (owed != null && (owed.headersSent || owed.req.complete))) {
      return socket.destroy()
    }
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

  const admin = createAdminServer({
    metrics,
    checks: () => current.checks,
    isShuttingDown: () => shuttingDown,
  }).server

  function inFlight(): number {
    let n = current.pipeline.inFlight
    for (const old of retiring) n += old.pipeline.inFlight
    return n
  }

  /** Waits until `stages` has no request left (or the deadline passes), then closes it. */
  async function retire(stages: Stages, deadlineMs: number): Promise<void> {
    retiring.add(stages)
    const deadline = Date.now() + deadlineMs
    while (stages.pipeline.inFlight > 0 && Date.now() < deadline) await sleep(DRAIN_POLL_MS)
    if (stages.pipeline.inFlight > 0) {
      logger.warn({ inFlight: stages.pipeline.inFlight }, 'reload: old stages closed with requests running')
    }
    await closeStages(stages, current)
    retiring.delete(stages)
  }

  async function swap(next: Config): Promise<ReloadResult> {
    if (shuttingDown) return { outcome: 'refused', reason: 'the gateway is shutting down' }
    const fixed = restartOnlyChange(current.config, next)
    if (fixed !== null) return { outcome: 'refused', reason: fixed }
    let stages: Stages
    try {
      stages = await buildStages(next, metrics, logger, current)
    } catch (err) {
      return { outcome: 'refused', reason: (err as Error).message }
    }
    // The new stages must be able to do what the running ones do before they take over.
    let refusal: string | null = null
    if (listening) {
      if (stages.remote !== null && stages.remote !== current.remote) {
        await stages.remote.loaded
        if (!stages.remote.ready)
          refusal = `GATEWAY_JWKS_URL (jwt.jwksUrl): no key set could be fetched from it`
      }
      if (refusal === null && stages.claims !== null) {
        await stages.claims.start()
        if (!stages.claims.listening && current.claims?.listening === true) {
          refusal = 'GATEWAY_DB_URL (db.url): the new database connection cannot LISTEN'
        }
      }
    }
    if (refusal !== null || shuttingDown) {
      await closeStages(stages, current)
      return { outcome: 'refused', reason: refusal ?? 'the gateway is shutting down' }
    }
    const old = current
    current = stages
    server.headersTimeout = next.server.headersTimeoutMs
    server.requestTimeout = next.server.requestTimeoutMs
    server.keepAliveTimeout = next.server.keepAliveTimeoutMs
    logger.level = next.log.level
    void retire(old, next.shutdown.deadlineMs)
    return { outcome: 'applied' }
  }

  async function closeAll(): Promise<void> {
    server.closeAllConnections()
    await Promise.allSettled([closeServer(server), closeServer(admin)])
    admin.closeAllConnections()
    await Promise.allSettled([...retiring].map((old) => closeStages(old, current)))
    retiring.clear()
    await closeStages(current, null)
  }

  return {
    server,
    admin,
    logger,
    metrics,
    get minter() {
      return current.minter
    },
    get pipeline() {
      return current.pipeline
    },
    get config() {
      return current.config
    },
    get shuttingDown() {
      return shuttingDown
    },
    async listen() {
      if (current.claims !== null) await current.claims.start()
      const port = await listenOn(server, config.server.port, config.server.host)
      const adminPort = await listenOn(admin, config.server.adminPort, config.server.adminHost)
      listening = true
      logger.info({ port, adminPort }, 'gateway listening')
      // Start-up lines are written before the first request, not with the first buffer of access lines.
      await flushLogger(logger)
      return { port, adminPort }
    },
    reload(next) {
      // One reload at a time: a second SIGHUP waits for the first and then applies its own file.
      reloading = reloading.then(
        () => swap(next),
        () => swap(next),
      )
      return reloading
    },
    async shutdown() {
      if (shuttingDown) return
      shuttingDown = true
      const { delayMs, deadlineMs } = current.config.shutdown
      logger.info({ delayMs }, 'shutting down: not ready, still serving')
      await sleep(delayMs)
      const closing = closeServer(server)
      const deadline = Date.now() + deadlineMs
      while (inFlight() > 0 && Date.now() < deadline) await sleep(DRAIN_POLL_MS)
      if (inFlight() > 0) logger.warn({ inFlight: inFlight() }, 'shutdown deadline reached')
      await closeAll()
      await closing
      logger.info('shutdown complete')
      // Access lines are buffered (observability/logger.ts): every one is written before the exit.
      await flushLogger(logger)
    },
    close: closeAll,
  }
}
