// Benchmarks, latency: an open-loop driver. Requests at a fixed rate, evenly spaced, over keep-alive sockets.
import { connect, type Socket } from 'node:net'

export interface PacedOptions {
  readonly port: number
  /** Requests per second, evenly spaced. */
  readonly rate: number
  readonly seconds: number
  /** Sockets opened before the clock starts; at most this many requests are in flight. */
  readonly connections: number
  /** Whole HTTP/1.1 requests (keep-alive), sent in turn. */
  readonly requests: readonly Buffer[]
  /** How long to wait for the last responses after the last request is due (ms). */
  readonly drainMs?: number
}

export interface Paced {
  /**
   * Each response's latency (ms), ascending: from the moment its request was due, not from when a
   * free socket sent it. With every socket busy, a request waits for one, and the wait counts: a
   * stalled proxy is charged for the requests it held up ("coordinated omission").
   */
  readonly latencies: Float64Array
  /** Responses other than 200, and requests left unanswered (a socket closed, or the drain ran out). */
  readonly failures: number
}

interface Conn {
  readonly socket: Socket
  /** When the request in flight was due (performance.now()), or -1 when idle. */
  due: number
  buffered: Buffer | null
}

/** A pause between opening the sockets and the first request. */
const ACCEPT_MS = 50
const HEAD_END = Buffer.from('\r\n\r\n')
const LAST_CHUNK = Buffer.from('\r\n0\r\n\r\n')
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i

/**
 * The length of the first whole response in `buf`, or -1 while it is incomplete. Bodies framed by
 * Content-Length or chunked (the last chunk ends it; no trailers).
 */
export function responseLength(buf: Buffer): number {
  const end = buf.indexOf(HEAD_END)
  if (end < 0) return -1
  const head = buf.toString('latin1', 0, end)
  const length = CONTENT_LENGTH.exec(head)
  if (length !== null) {
    const total = end + 4 + Number(length[1])
    return buf.length >= total ? total : -1
  }
  // Chunked: the body of a 0-length response is the last chunk alone.
  if (buf.length >= end + 5 && buf.toString('latin1', end + 4, end + 9) === '0\r\n\r\n') return end + 9
  const last = buf.indexOf(LAST_CHUNK, end + 4)
  return last < 0 ? -1 : last + LAST_CHUNK.length
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true }, () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/** Drives `rate` requests per second at the proxy on `port` for `seconds`, open loop. */
export async function paced(options: PacedOptions): Promise<Paced> {
  const { rate, seconds, requests, drainMs = 10_000 } = options
  const total = Math.max(1, Math.floor(rate * seconds))
  const latencies = new Float64Array(total)
  let answered = 0
  let failures = 0
  let next = 0
  const idle: Conn[] = []
  const waiting: number[] = [] // due times of requests no socket was free for
  let waitingFrom = 0
  let finished: () => void = () => {}
  const allAnswered = new Promise<void>((resolve) => {
    finished = resolve
  })

  const send = (conn: Conn, due: number) => {
    conn.due = due
    conn.socket.write(requests[next++ % requests.length]!)
  }
  const settle = () => {
    if (answered + failures === total) finished()
  }

  const sockets = await Promise.all(Array.from({ length: options.connections }, () => open(options.port)))
  const conns = sockets.map((socket): Conn => {
    const conn: Conn = { socket, due: -1, buffered: null }
    socket.on('data', (chunk: Buffer) => {
      let buf = conn.buffered === null ? chunk : Buffer.concat([conn.buffered, chunk])
      for (;;) {
        const length = responseLength(buf)
        if (length < 0) break
        if (buf.toString('latin1', 9, 12) === '200') latencies[answered++] = performance.now() - conn.due
        else failures++
        conn.due = -1
        buf = buf.subarray(length)
        if (waitingFrom < waiting.length) send(conn, waiting[waitingFrom++]!)
        else idle.push(conn)
        if (buf.length === 0) break
      }
      conn.buffered = buf.length === 0 ? null : buf
      settle()
    })
    socket.on('close', () => {
      // A request in flight on a closed socket is lost; the socket is not used again.
      const at = idle.indexOf(conn)
      if (at >= 0) idle.splice(at, 1)
      if (conn.due >= 0) {
        conn.due = -1
        failures++
        settle()
      }
    })
    socket.on('error', () => {})
    return conn
  })
  idle.push(...conns)
  // Time for the proxy to take the new connections in before the clock starts.
  await new Promise((resolve) => setTimeout(resolve, ACCEPT_MS))

  const start = performance.now()
  const interval = 1000 / rate
  let sent = 0
  await new Promise<void>((resolve) => {
    // Every millisecond, the requests that have fallen due; each keeps its own due time.
    const tick = () => {
      const due = Math.min(total, Math.floor((performance.now() - start) / interval) + 1)
      for (; sent < due; sent++) {
        const at = start + sent * interval
        const conn = idle.pop()
        if (conn !== undefined) send(conn, at)
        else waiting.push(at)
      }
      if (sent === total) {
        clearInterval(timer)
        resolve()
      }
    }
    const timer = setInterval(tick, 1)
    tick()
  })
  let drained: NodeJS.Timeout | undefined
  await Promise.race([
    allAnswered,
    new Promise<void>((resolve) => {
      drained = setTimeout(resolve, drainMs)
    }),
  ])
  clearTimeout(drained)
  failures = total - answered
  for (const conn of conns) conn.socket.destroy()
  return { latencies: latencies.subarray(0, answered).sort(), failures }
}
