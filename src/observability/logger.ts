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

/** The end of a time field for each millisecond: `000Z"` to `999Z"`. */
const MILLIS: readonly string[] = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z"`)

/**
 * pino's `stdTimeFunctions.isoTime` output (`,"time":"2026-01-02T03:04:05.678Z"`) with the part up
 * to the second formatted once per second and the milliseconds taken from a table:
 * `toISOString()` on every line was a tenth of the access line's cost under load.
 */
function isoTime(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== isoSecond) {
    isoSecond = second
    isoPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`
  }
  return isoPrefix + MILLIS[now - second * 1000]!
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
/**
 * Lines beyond this many buffered bytes (a stdout that does not keep up) are dropped and
 * counted instead of growing the heap without limit; see {@link LogDestination.dropped}.
 */
export const LOG_MAX_BUFFERED = 16 * 1024 * 1024
/** A non-blocking stdout that is full (`EAGAIN`) is retried after this long. */
const RETRY_MS = 10
/** Room past the write threshold in each buffer, so the line that reaches it still fits. */
const SLACK_BYTES = 16384
/** UTF-8 takes at most 3 bytes per UTF-16 code unit. */
const MAX_BYTES_PER_UNIT = 3

/**
 * pino's destination for JSON lines: `write` encodes the line into the buffer being filled at once
 * (pino's own sonic-boom destination spent ~2.5 us per line on bookkeeping for its asynchronous
 * writes, two thirds of an access line's cost), so no line outlives its request as a string; a
 * filled buffer goes out in one `fs.write`, at most one under way, further lines filling the next
 * buffer meanwhile. Written in order, partial writes continued, `EAGAIN` retried.
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
  /** The buffer lines are encoded into, `#used` bytes of it so far, holding `#fillLines` lines. */
  #fill: Buffer
  #used = 0
  #fillLines = 0
  /** Filled buffers waiting for their write (a stdout slower than the lines), oldest first. */
  #pending: Buffer[] = []
  #pendingLines: number[] = []
  /** The buffer of the last finished write, filled again next (two buffers in turn, no allocation). */
  #spare: Buffer | null = null
  /** Lines buffered, in #fill and #pending. */
  #count = 0
  /** Bytes buffered, in #fill and #pending. */
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
    this.#fill = this.#newBuffer()
  }

  get dropped(): number {
    return this.#dropped
  }

  /**
   * The buffer to encode one line into directly, with `max` bytes free from {@link used}, or null
   * (the line must go through {@link write}: longer than a buffer, or over the bound). The caller
   * writes at most `max` bytes and calls {@link commit} with its end, or abandons the line.
   */
  room(max: number): Buffer | null {
    if (this.#buffered + max > this.#maxBuffered || max > this.#bufferBytes) return null
    if (this.#fill.length - this.#used < max) this.#queueFill()
    return this.#fill
  }

  /** Where a line encoded into {@link room}'s buffer starts. */
  get used(): number {
    return this.#used
  }

  /** Counts the line encoded into {@link room}'s buffer, ending at `end`, as `write` counts its line. */
  commit(end: number): void {
    this.#buffered += end - this.#used
    this.#used = end
    this.#fillLines++
    this.#count++
    this.#wrote()
  }

  write(line: string): boolean {
    if (this.#buffered + line.length > this.#maxBuffered) {
      this.#dropped++
      this.#unreported++
      return true
    }
    this.#append(line)
    this.#wrote()
    return true
  }

  /** A line was buffered: write once enough is pending, else within the flush interval. */
  #wrote(): void {
    if (this.#chunk === null) {
      if (this.#buffered >= this.#bufferBytes) this.#start()
      else if (this.#timer === null) this.#timer = setTimeout(this.#tick, this.#intervalMs).unref()
    }
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

  #newBuffer(): Buffer {
    return Buffer.allocUnsafeSlow(this.#bufferBytes + SLACK_BYTES)
  }

  /** Encodes `line` at the end of the fill buffer (a full one is queued first). */
  #append(line: string): void {
    if (this.#fill.length - this.#used < line.length * MAX_BYTES_PER_UNIT) {
      this.#queueFill()
      if (this.#fill.length < line.length * MAX_BYTES_PER_UNIT) {
        // Longer than a buffer (a very long error line): a buffer of its own.
        const whole = Buffer.from(line, 'utf8')
        this.#pending.push(whole)
        this.#pendingLines.push(1)
        this.#count++
        this.#buffered += whole.length
        return
      }
    }
    const n = this.#fill.write(line, this.#used)
    this.#used += n
    this.#fillLines++
    this.#count++
    this.#buffered += n
  }

  /** Moves what the fill buffer holds to the queue and starts a fresh fill buffer. */
  #queueFill(): void {
    if (this.#used === 0) return
    this.#pending.push(this.#fill.subarray(0, this.#used))
    this.#pendingLines.push(this.#fillLines)
    this.#fill = this.#spare ?? this.#newBuffer()
    this.#spare = null
    this.#used = 0
    this.#fillLines = 0
  }

  /** Every buffered line in one Buffer, taken out of the destination. */
  #take(): Buffer {
    this.#queueFill()
    const pending = this.#pending
    const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
    this.#pending = []
    this.#pendingLines = []
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
    this.#queueFill()
    const chunk = this.#pending.shift()
    if (chunk === undefined) return
    const lines = this.#pendingLines.shift()!
    this.#count -= lines
    this.#buffered -= chunk.length
    this.#chunk = chunk
    this.#chunkLines = lines
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
    // The chunk's buffer is filled again, unless it was one line's own or a buffer waits already.
    const done = this.#chunk!
    if (this.#spare === null && done.buffer.byteLength === this.#bufferBytes + SLACK_BYTES) {
      this.#spare = Buffer.from(done.buffer, done.byteOffset, done.buffer.byteLength)
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
    this.#append(line)
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

/** The decimals of a whole number of microseconds past the millisecond: '', '.001' ... '.999', trailing zeros dropped. */
const FRACTIONS: readonly string[] = Array.from({ length: 1000 }, (_, us) =>
  us === 0 ? '' : `.${String(us).padStart(3, '0').replace(/0+$/, '')}`,
)

/**
 * The whole microseconds of a millisecond figure rounded to 3 decimals, or -1 when the figure does
 * not print as such: below 10^15 microseconds, `k / 1000` prints as the decimal k with a point put
 * in (no shorter decimal is the same double), so the figure can be written from the integer.
 */
function wholeMicros(value: number): number {
  const us = Math.round(value * 1000)
  return us / 1000 !== value || us < 0 || us >= 1e15 ? -1 : us
}

/**
 * `jsonNumber` for the log's millisecond figures: the whole milliseconds and a table entry for the
 * rest, which formats several times faster than a fraction.
 */
function jsonMs(value: number): string {
  const us = wholeMicros(value)
  if (us === -1) return jsonNumber(value)
  const whole = Math.floor(us / 1000)
  return String(whole) + FRACTIONS[us - whole * 1000]!
}

const ascii = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0))
const LEVEL_30 = ascii('{"level":30')
const REQ_ID = ascii(',"reqId":"')
const METHOD = ascii('","method":"')
const PATH = ascii('","path":"')
const STATUS = ascii('","status":')
const DURATION = ascii(',"durationMs":')
const UPSTREAM = ascii(',"upstreamMs":')
const ROLE = ascii(',"role":')
const CODE = ascii(',"code":')
const NULL = ascii('null')
const END = ascii(',"msg":"request"}\n')
/** The bytes of a line but for its fields' own characters. */
const FIXED_BYTES = 256

/** `bytes` copied to `at`. */
function put(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  buf.set(bytes, at)
  return at + bytes.length
}

/**
 * `text` copied to `at` as the inside of a JSON string, or -1 when it holds a character JSON
 * escapes or one beyond ASCII (the line is then written through the string path).
 */
function putText(buf: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 32 || c >= 128 || c === 34 || c === 92) return -1
    buf[at + i] = c
  }
  return at + text.length
}

/** A JSON string (or null) at `at`, or -1 as {@link putText}. */
function putString(buf: Uint8Array, at: number, text: string | null): number {
  if (text === null) return put(buf, at, NULL)
  buf[at] = 34
  const end = putText(buf, at + 1, text)
  if (end === -1) return -1
  buf[end] = 34
  return end + 1
}

/** The decimal digits of a whole number below 2^53, written at `at`. */
function putDigits(buf: Uint8Array, at: number, value: number): number {
  let digits = 1
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++
  let rest = value
  for (let k = at + digits - 1; k >= at; k--) {
    const next = Math.floor(rest / 10)
    buf[k] = 48 + rest - next * 10
    rest = next
  }
  return at + digits
}

/** A millisecond figure as {@link jsonMs} prints it, or -1 for one that is not a whole number of microseconds. */
function putMs(buf: Uint8Array, at: number, value: number): number {
  const us = wholeMicros(value)
  if (us === -1) return -1
  const whole = Math.floor(us / 1000)
  at = putDigits(buf, at, whole)
  let fraction = us - whole * 1000
  if (fraction === 0) return at
  buf[at++] = 46 // .
  let scale = 100
  while (fraction > 0) {
    const digit = Math.floor(fraction / scale)
    buf[at++] = 48 + digit
    fraction -= digit * scale
    scale /= 10
  }
  return at
}

/** The time field (`,"time":"...Z"`) at `at`: the part up to the second encoded once per second. */
class TimeField {
  #second = Number.NaN
  readonly #prefix = new Uint8Array(29)

  put(buf: Uint8Array, at: number): number {
    const now = Date.now()
    const second = Math.floor(now / 1000)
    if (second !== this.#second) {
      this.#second = second
      this.#prefix.set(ascii(`,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`))
    }
    at = put(buf, at, this.#prefix)
    const ms = now - second * 1000
    buf[at] = 48 + Math.floor(ms / 100)
    buf[at + 1] = 48 + (Math.floor(ms / 10) % 10)
    buf[at + 2] = 48 + (ms % 10)
    buf[at + 3] = 90 // Z
    buf[at + 4] = 34 // "
    return at + 5
  }
}

/**
 * Encodes an access line straight into the destination's buffer: no string is built for it, so the
 * line costs neither the pieces of a template nor their copy when it is written. Returns false,
 * leaving nothing behind, for a line it does not encode (a field with a character JSON escapes or
 * beyond ASCII, a figure that is not a whole number of microseconds, no room): the caller then
 * writes the line as a string.
 */
function encodeAccessLine(
  destination: BufferedDestination,
  time: TimeField,
  bindings: Uint8Array,
  line: AccessLine,
): boolean {
  const { reqId, method, path, status, role, code } = line
  const max =
    FIXED_BYTES +
    bindings.length +
    reqId.length +
    (method === undefined ? 0 : method.length) +
    path.length +
    (role === null ? 0 : role.length) +
    (code === null ? 0 : code.length)
  const buf = destination.room(max)
  if (buf === null || !Number.isInteger(status) || status < 0 || status >= 1e15) return false
  let at = put(buf, destination.used, LEVEL_30)
  at = time.put(buf, at)
  at = put(buf, at, bindings)
  at = putText(buf, put(buf, at, REQ_ID), reqId)
  if (at === -1) return false
  if (method !== undefined) {
    at = putText(buf, put(buf, at, METHOD), method)
    if (at === -1) return false
  }
  at = putText(buf, put(buf, at, PATH), path)
  if (at === -1) return false
  at = putDigits(buf, put(buf, at, STATUS), status)
  at = putMs(buf, put(buf, at, DURATION), line.durationMs)
  if (at === -1) return false
  at = put(buf, at, UPSTREAM)
  at = line.upstreamMs === null ? put(buf, at, NULL) : putMs(buf, at, line.upstreamMs)
  if (at === -1) return false
  at = putString(buf, put(buf, at, ROLE), role)
  if (at === -1) return false
  at = putString(buf, put(buf, at, CODE), code)
  if (at === -1) return false
  destination.commit(put(buf, at, END))
  return true
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
  const chindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? ''
  const head = `${chindings},"reqId":`
  // Bindings beyond ASCII (a service name, say) send every line the string way.
  const bindings = /^[\x20-\x7e]*$/.test(chindings) ? ascii(chindings) : null
  const time = new TimeField()
  return (line) => {
    if (!logger.isLevelEnabled('info')) return
    if (bindings !== null && encodeAccessLine(destination, time, bindings, line)) return
    // pino leaves out undefined fields; the method is always set on a request Node parsed.
    const method = line.method === undefined ? '' : `,"method":${jsonString(line.method)}`
    const upstreamMs = line.upstreamMs === null ? 'null' : jsonMs(line.upstreamMs)
    const role = line.role === null ? 'null' : jsonString(line.role)
    const code = line.code === null ? 'null' : jsonString(line.code)
    destination.write(
      `{"level":30${isoTime()}${head}${jsonString(line.reqId)}${method},"path":${jsonString(
        line.path,
      )},"status":${jsonNumber(line.status)},"durationMs":${jsonMs(line.durationMs)},"upstreamMs":${upstreamMs},"role":${role},"code":${code},"msg":"request"}\n`,
    )
  }
}
