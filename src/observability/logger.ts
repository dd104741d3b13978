// Logs: pino JSON (or a readable form for the demo), levels decided once at start.
import { createRequire } from 'node:module'
import pino, { type Logger } from 'pino'
import type { LogConfig } from '../config/types.js'

/**
 * Header and claim values never reach a log line: the pipeline logs from a fixed vocabulary
 * (reqId, method, path, status, durationMs, upstreamMs, role, code, err). The redaction below is
 * a second line of defence for anything that might carry them.
 */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers.apikey',
  'headers.authorization',
  'headers.cookie',
  'headers.apikey',
  'authorization',
  'cookie',
  'apikey',
  'token',
  'claims',
]

export function createLogger(config: LogConfig, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.level,
    base: { service: 'postgrest-gateway' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  if (destination !== undefined) return pino(options, destination)
  if (config.pretty) {
    // Loaded only for the readable form (development), not in production processes.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty')
    return pino(
      options,
      pretty({ colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,service' }),
    )
  }
  return pino(options)
}
