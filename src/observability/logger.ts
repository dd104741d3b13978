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

let isoSecond = Number.NaN
let isoPrefix = ''

/**
 * pino's `stdTimeFunctions.isoTime` output (`,"time":"2026-01-02T03:04:05.678Z"`) with the part up
 * to the second formatted once per second: `toISOString()` on every line was a tenth of the
 * access line's cost under load.
 */
function isoTime(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== isoSecond) {
    isoSecond = second
    isoPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`
  }
  const ms = now - second * 1000
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`
}

/**
 * JSON lines to stdout are buffered and written asynchronously once 4 KiB are pending (about 15
 * access lines per write instead of one write per line, pino docs "Asynchronous Logging"), and at
 * least every {@link LOG_FLUSH_INTERVAL_MS} so a quiet gateway's lines still appear promptly.
 * What is still buffered at exit is written by {@link flushLogger} / {@link flushLoggerSync}.
 */
export const LOG_BUFFER_BYTES = 4096
export const LOG_FLUSH_INTERVAL_MS = 250

/**
 * The gateway's logger. `destination`: a stream (tests), or a file descriptor to write buffered
 * JSON lines to; the default is stdout (fd 1), buffered. The pretty form is written unbuffered.
 */
export function createLogger(config: LogConfig, destination?: pino.DestinationStream | number): Logger {
  const options: pino.LoggerOptions = {
    level: config.level,
    base: { service: 'postgrest-gateway' },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: isoTime,
  }
  if (destination !== undefined && typeof destination !== 'number') return pino(options, destination)
  if (config.pretty) {
    // Loaded only for the readable form (development), not in production processes.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty')
    return pino(
      options,
      pretty({ colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname,service' }),
    )
  }
  // pino registers an exit handler that writes the buffer synchronously (process.exit included).
  const buffered = pino.destination({
    dest: destination ?? 1,
    sync: false,
    minLength: LOG_BUFFER_BYTES,
    periodicFlush: LOG_FLUSH_INTERVAL_MS,
  })
  BUFFERED.add(buffered)
  return pino(options, buffered)
}

/** The parts of pino's buffered destination (sonic-boom) the flushes use. */
interface BufferedStream {
  flush(): void
  flushSync(): void
  once(event: 'drain' | 'error', listener: () => void): unknown
  off(event: 'drain' | 'error', listener: () => void): unknown
}

/** The destinations createLogger buffers; only these are flushed. */
const BUFFERED = new WeakSet<object>()

function bufferedStream(logger: Logger): BufferedStream | null {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
  return typeof stream === 'object' && stream !== null && BUFFERED.has(stream)
    ? (stream as BufferedStream)
    : null
}

/** A flush that cannot finish (a stuck or broken stdout) gives up after this long. */
const FLUSH_TIMEOUT_MS = 2000

/**
 * Writes every buffered line and resolves once it is written, in order (never rejects: a log that
 * cannot be written must not stop a shutdown). Immediate for unbuffered destinations.
 */
export function flushLogger(logger: Logger): Promise<void> {
  const stream = bufferedStream(logger)
  if (stream === null) return Promise.resolve()
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      stream.off('drain', drained)
      stream.off('error', done)
      resolve()
    }
    // sonic-boom emits 'drain' when its write under way has finished, but leaves a remainder
    // under `minLength` buffered: with no write under way, flushSync writes that remainder in order.
    const drained = (): void => {
      flushLoggerSync(logger)
      done()
    }
    const timer = setTimeout(done, FLUSH_TIMEOUT_MS)
    stream.once('drain', drained)
    stream.once('error', done)
    stream.flush()
  })
}

/**
 * Writes every buffered line now, blocking; for paths that end in `process.exit()` without
 * waiting. A chunk whose asynchronous write is under way is left to that write (it may land after
 * the lines written here): prefer {@link flushLogger} where the caller can wait.
 */
export function flushLoggerSync(logger: Logger): void {
  try {
    bufferedStream(logger)?.flushSync()
  } catch {
    // destroyed, or not open yet: nothing more can be written
  }
}
