#!/usr/bin/env -S node --max-semi-space-size=16 --no-allocation-site-pretenuring --expose-gc
// Process entry only: load config -> create gateway -> listen -> reload on SIGHUP, shut down on SIGTERM/SIGINT.
import type { Logger } from 'pino'
import { ConfigError, HELP_TEXT, loadConfig, parseArgs, readVersion } from './config/index.js'
import { createGateway } from './gateway.js'
import { importSigningKey } from './mint/index.js'
import { flushLoggerSync } from './observability/logger.js'
import { keepTickShape } from './tick-shape.js'

/** Exit code for a configuration the gateway refuses to start with. */
const EXIT_CONFIG = 2
/** Exit code when a second SIGTERM/SIGINT cuts a graceful shutdown short. */
const EXIT_SECOND_SIGNAL = 1

/** The gateway's logger once created: its buffered lines are written before a fatal exit. */
let logger: Logger | null = null

function fail(message: string): never {
  process.stderr.write(`postgrest-gateway: ${message}\n`)
  process.exit(EXIT_CONFIG)
}

async function main(): Promise<void> {
  // Before anything runs on the event loop: see tick-shape.ts.
  await keepTickShape()
  let args: ReturnType<typeof parseArgs>
  let config: ReturnType<typeof loadConfig>
  try {
    args = parseArgs(process.argv.slice(2))
    if (args.command === 'help') {
      process.stdout.write(HELP_TEXT)
      return
    }
    if (args.command === 'version') {
      process.stdout.write(`${readVersion()}\n`)
      return
    }
    config = loadConfig({ argv: process.argv.slice(2), env: process.env })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }

  if (args.command === 'jwks') {
    // The public half of the minting key, for PostgREST's jwt-secret (beside the IdP's keys).
    let key: Awaited<ReturnType<typeof importSigningKey>>
    try {
      key = await importSigningKey(config.upstream.jwtSecret, {
        isBase64: config.upstream.jwtSecretIsBase64,
        kid: config.mint.kid,
      })
    } catch (err) {
      fail((err as Error).message)
    }
    if (key.publicJwk === null) {
      fail('jwks: GATEWAY_UPSTREAM_JWT_SECRET is a shared HS256 secret: give PostgREST the same secret')
    }
    process.stdout.write(`${JSON.stringify({ keys: [key.publicJwk] })}\n`)
    return
  }

  let gateway: Awaited<ReturnType<typeof createGateway>>
  try {
    gateway = await createGateway(config)
  } catch (err) {
    // Keys and role settings are checked while the stages are built: still a start-up refusal.
    fail((err as Error).message)
  }
  const started = gateway
  logger = gateway.logger

  // SIGHUP: read the configuration file and secret files again and swap the stages in; a broken
  // configuration is refused with one error line naming the option, and the running one stays.
  let reloads = 0
  process.on('SIGHUP', () => {
    const n = ++reloads
    let next: ReturnType<typeof loadConfig>
    try {
      next = loadConfig({ argv: process.argv.slice(2), env: process.env })
    } catch (err) {
      refuse(err instanceof ConfigError ? err.message : String((err as Error).message))
      return
    }
    started.reload(next).then((result) => {
      if (result.outcome === 'refused') refuse(result.reason)
      else started.logger.info({ reload: n }, 'configuration reloaded')
    }, refuse)
  })
  function refuse(reason: unknown): void {
    started.logger.error(
      { reason: reason instanceof Error ? reason.message : String(reason) },
      'configuration reload refused; the running configuration stays',
    )
  }

  await gateway.listen()

  // First SIGTERM/SIGINT: graceful shutdown, exit 0. A second one: exit 1 at once, in-flight
  // requests are cut (the orchestrator asked twice; it will not wait any longer either).
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals > 1) {
      started.logger.warn({ signal }, 'second signal: exiting now')
      flushLoggerSync(started.logger)
      process.exit(EXIT_SECOND_SIGNAL)
    }
    started.logger.info({ signal }, 'signal received')
    started.shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        started.logger.error({ err }, 'shutdown failed')
        flushLoggerSync(started.logger)
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}

process.on('unhandledRejection', (reason) => {
  if (logger !== null) flushLoggerSync(logger)
  process.stderr.write(
    `postgrest-gateway: unhandled rejection: ${reason instanceof Error ? reason.stack : String(reason)}\n`,
  )
  process.exit(1)
})

void main()
