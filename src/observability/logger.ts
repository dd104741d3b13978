// Logs: pino JSON (or a readable form for the demo), levels decided once at start.
import { write, writeSync } from 'node:fs'
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
 * JSON lines to stdout are buffered and written asynchronously once {@link LOG_BUFFER_BYTES} are
 * pending (about 250 access lines per write instead of one write per line: an asynchronous
 * `fs.write` costs about 20 us of CPU however small, and 16 KiB had measured a
 * little cheaper than 4 KiB under load), and at most
 * {@link LOG_FLUSH_INTERVAL_MS} after a line arrives so a quiet gateway's lines still appear
 * promptly. What is still buffered at exit is written by {@link flushLogger} / {@link flushLoggerSync}.
 */
export const LOG_BUFFER_BYTES = 65536
export const LOG_FLUSH_INTERVAL_MS = 250
/** Lines joined and encoded together while they are young (see BufferedDestination #lines). */
const LINES_PER_GROUP = 32
/**
 * Lines beyond this many buffered characters (a stdout that does not keep up) are dropped and
 * counted instead of growing the heap without limit; see {@link LogDestination.dropped}.
 */
export const LOG_MAX_BUFFERED = 16 * 1024 * 1024
/** A non-blocking stdout that is full (`EAGAIN`) is retried after this long. */
const RETRY_MS = 10

/**
 * pino's destination for JSON lines: `write` appends the line to an array (pino's own sonic-boom
 * destination spent ~2.5 us per line on bookkeeping for its asynchronous writes, two thirds of an
 * access line's cost); the joined lines go out in one `fs.write`, at most one under way, further
 * lines buffering meanwhile. Written in order, partial writes continued, `EAGAIN` retried.
 */
export interface LogDestination {
  write(line: string): boolean
  /** Resolves once every line buffered so far is written (or could not be: never rejects). */
  flush(): Promise<void>
  /**
   * Writes every buffered line now, blocking. A chunk whose asynchronous write is under way is
   * left to that write: it may land after the lines written here (only on exit paths that cannot
   * wait; {@link LogDestination.flush} keeps the order).
   */
  flushSync(): void
  /** Lines dropped so far: over {@link LOG_MAX_BUFFERED}, or lost to a write error. */
  readonly dropped: number
}

/** Options of {@link createLogDestination}; the defaults are the constants above. */
export interface LogDestinationOptions {
  readonly fd: number
  readonly bufferBytes?: number
  readonly intervalMs?: number
  readonly maxBuffered?: number
}

class BufferedDestination implements LogDestination {
  readonly #fd: number
  readonly #bufferBytes: number
  readonly #intervalMs: number
  readonly #maxBuffered: number
  /**
   * The newest lines, as strings; every {@link LINES_PER_GROUP} of them are joined and encoded into
   * one Buffer in #sealed. An access line is a tree of string pieces until something flattens it:
   * held as strings until a 64 KiB write, the trees outlived two scavenges and were promoted to the
   * old generation (about a kilobyte per request); sealed early, they die young.
   */
  #lines: string[] = []
  #sealed: Buffer[] = []
  /** Lines buffered, in #lines and #sealed. */
  #count = 0
  /** Characters buffered (UTF-16 units: bytes for the ASCII of JSON lines, near enough for a threshold). */
  #buffered = 0
  /** The chunk being written asynchronously, and how much of it is confirmed. */
  #chunk: Buffer | null = null
  #offset = 0
  /** Lines in #chunk, counted as dropped if its write fails. */
  #chunkLines = 0
  #timer: NodeJS.Timeout | null = null
  /** Set by the timer or flush(): write what is buffered even below #bufferBytes. */
  #flushWanted = false
  #waiters: (() => void)[] = []
  #dropped = 0
  /** Drops not yet reported in a line of their own. */
  #unreported = 0
  readonly #written = (err: NodeJS.ErrnoException | null, n: number): void => this.#afterWrite(err, n)
  readonly #retry = (): void => this.#writeChunk()
  readonly #tick = (): void => {
    this.#timer = null
    if (this.#count === 0) return
    this.#flushWanted = true
    if (this.#chunk === null) this.#start()
  }

  constructor(options: LogDestinationOptions) {
    this.#fd = options.fd
    this.#bufferBytes = options.bufferBytes ?? LOG_BUFFER_BYTES
    this.#intervalMs = options.intervalMs ?? LOG_FLUSH_INTERVAL_MS
    this.#maxBuffered = options.maxBuffered ?? LOG_MAX_BUFFERED
  }

  get dropped(): number {
    return this.#dropped
  }

  write(line: string): boolean {
    if (this.#buffered + line.length > this.#maxBuffered) {
      this.#dropped++
      this.#unreported++
      return true
    }
    this.#lines.push(line)
    this.#count++
    this.#buffered += line.length
    if (this.#lines.length >= LINES_PER_GROUP) this.#seal()
    if (this.#chunk === null) {
      if (this.#buffered >= this.#bufferBytes) this.#start()
      else if (this.#timer === null) this.#timer = setTimeout(this.#tick, this.#intervalMs).unref()
    }
    return true
  }

  flush(): Promise<void> {
    if (this.#chunk === null && this.#count === 0) return Promise.resolve()
    this.#flushWanted = true
    return new Promise((resolve) => {
      this.#waiters.push(resolve)
      if (this.#chunk === null) this.#start()
    })
  }

  flushSync(): void {
    this.#report()
    if (this.#count === 0) return
    const data = this.#take()
    let offset = 0
    let stalls = 0
    while (offset < data.length) {
      try {
        offset += writeSync(this.#fd, data, offset, data.length - offset)
      } catch (err) {
        // A full non-blocking stdout: wait a little (blocking is the point here), up to ~1 s.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++stalls > 100) throw err
        Atomics.wait(STALL, 0, 0, RETRY_MS)
      }
    }
  }

  /** Encodes the open group of lines into one Buffer. */
  #seal(): void {
    if (this.#lines.length === 0) return
    this.#sealed.push(Buffer.from(this.#lines.join(''), 'utf8'))
    this.#lines = []
  }

  /** Moves every buffered line into one Buffer. */
  #take(): Buffer {
    this.#seal()
    const data = this.#sealed.length === 1 ? this.#sealed[0]! : Buffer.concat(this.#sealed)
    this.#sealed = []
    this.#count = 0
    this.#buffered = 0
    return data
  }

  #start(): void {
    this.#report()
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    this.#chunkLines = this.#count
    this.#chunk = this.#take()
    this.#offset = 0
    this.#writeChunk()
  }

  #writeChunk(): void {
    const chunk = this.#chunk!
    write(this.#fd, chunk, this.#offset, chunk.length - this.#offset, null, this.#written)
  }

  #afterWrite(err: NodeJS.ErrnoException | null, n: number): void {
    if (err !== null) {
      if (err.code === 'EAGAIN') {
        setTimeout(this.#retry, RETRY_MS)
        return
      }
      // EPIPE, EBADF...: this chunk cannot be written; later lines are still tried.
      this.#dropped += this.#chunkLines
      this.#offset = this.#chunk!.length
    } else {
      this.#offset += n
      if (this.#offset < this.#chunk!.length) {
        this.#writeChunk()
        return
      }
    }
    this.#chunk = null
    if (this.#count > 0 && (this.#flushWanted || this.#buffered >= this.#bufferBytes)) {
      this.#start()
      return
    }
    if (this.#count > 0 && this.#timer === null) {
      this.#timer = setTimeout(this.#tick, this.#intervalMs).unref()
    }
    if (this.#count === 0) {
      this.#flushWanted = false
      const waiters = this.#waiters
      this.#waiters = []
      for (const resolve of waiters) resolve()
    }
  }

  /** Drops are told in the log itself, in order, once there is room again. */
  #report(): void {
    if (this.#unreported === 0) return
    const line = `{"level":40${isoTime()},"service":"postgrest-gateway","dropped":${this.#unreported},"msg":"log lines dropped: stdout did not keep up"}\n`
    this.#unreported = 0
    this.#lines.push(line)
    this.#count++
    this.#buffered += line.length
  }
}

/** Something to Atomics.wait on for a blocking pause in flushSync. */
const STALL = new Int32Array(new SharedArrayBuffer(4))

/** A buffered destination writing to `fd` (see {@link LogDestination}). */
export function createLogDestination(options: LogDestinationOptions): LogDestination {
  const destination = new BufferedDestination(options)
  LIVE.add(new WeakRef(destination))
  if (!exitHooked) {
    exitHooked = true
    // pino did this for its own destination: `process.exit()` anywhere still writes the buffer.
    process.once('exit', flushAllSync)
  }
  return destination
}

const LIVE = new Set<WeakRef<BufferedDestination>>()
let exitHooked = false

function flushAllSync(): void {
  for (const ref of LIVE) {
    try {
      ref.deref()?.flushSync()
    } catch {
      // closed: nothing more can be written
    }
  }
}

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
  return pino(options, createLogDestination({ fd: destination ?? 1 }))
}

function bufferedDestination(logger: Logger): BufferedDestination | null {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
  return stream instanceof BufferedDestination ? stream : null
}

/** A flush that cannot finish (a stuck or broken stdout) gives up after this long. */
const FLUSH_TIMEOUT_MS = 2000

/**
 * Writes every buffered line and resolves once it is written, in order (never rejects: a log that
 * cannot be written must not stop a shutdown). Immediate for unbuffered destinations.
 */
export function flushLogger(logger: Logger): Promise<void> {
  const destination = bufferedDestination(logger)
  if (destination === null) return Promise.resolve()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)
  })
  return Promise.race([destination.flush(), timeout]).then(() => clearTimeout(timer))
}

/**
 * Writes every buffered line now, blocking; for paths that end in `process.exit()` without
 * waiting. A chunk whose asynchronous write is under way is left to that write (it may land after
 * the lines written here): prefer {@link flushLogger} where the caller can wait.
 */
export function flushLoggerSync(logger: Logger): void {
  try {
    bufferedDestination(logger)?.flushSync()
  } catch {
    // closed: nothing more can be written
  }
}

/** One access line's fields, in the order they appear in the line. */
export interface AccessLine {
  readonly reqId: string
  readonly method: string | undefined
  readonly path: string
  readonly status: number
  readonly durationMs: number
  readonly upstreamMs: number | null
  readonly role: string | null
  readonly code: string | null
}

/** Writes `logger.info(line, 'request')`. */
export type AccessLog = (line: AccessLine) => void

/** pino's string encoding (tools.js `asString`): only `"`, `\` and control characters are escaped. */
function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 32 || c === 34 || c === 92) return JSON.stringify(value)
  }
  return `"${value}"`
}

function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null'
}

/**
 * `jsonNumber` for the log's millisecond figures, rounded to 3 decimals: from the integer number of
 * microseconds, which formats several times faster than a fraction. Exact: below 10^15, `k / 1000`
 * prints as the decimal k with a point put in (no shorter decimal is the same double).
 */
function jsonMs(value: number): string {
  const us = Math.round(value * 1000)
  if (us / 1000 !== value || us < 0 || us >= 1e15) return jsonNumber(value)
  if (us % 1000 === 0) return String(us / 1000)
  const digits = String(us).padStart(4, '0')
  const point = digits.length - 3
  let end = digits.length
  while (digits.charCodeAt(end - 1) === 48 /* 0 */) end--
  return `${digits.slice(0, point)}.${digits.slice(point, end)}`
}

/**
 * The access log: exactly the line `logger.info(line, 'request')` writes (a test holds the two
 * equal), built with one template instead of pino's generic serialiser, which cost about 3 us per
 * request under load. Used when the logger writes JSON to the gateway's buffered destination; any
 * other logger (the readable form, a test stream) gets the line through pino.
 */
export function createAccessLog(logger: Logger): AccessLog {
  const destination = bufferedDestination(logger)
  if (destination === null) return (line) => logger.info(line, 'request')
  const bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? ''
  return (line) => {
    if (!logger.isLevelEnabled('info')) return
    // pino leaves out undefined fields; the method is always set on a request Node parsed.
    const method = line.method === undefined ? '' : `,"method":${jsonString(line.method)}`
    const upstreamMs = line.upstreamMs === null ? 'null' : jsonMs(line.upstreamMs)
    const role = line.role === null ? 'null' : jsonString(line.role)
    const code = line.code === null ? 'null' : jsonString(line.code)
    destination.write(
      `{"level":30${isoTime()}${bindings},"reqId":${jsonString(line.reqId)}${method},"path":${jsonString(
        line.path,
      )},"status":${jsonNumber(line.status)},"durationMs":${jsonMs(line.durationMs)},"upstreamMs":${upstreamMs},"role":${role},"code":${code},"msg":"request"}\n`,
    )
  }
}
