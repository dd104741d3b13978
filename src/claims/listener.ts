// Claims stage: the dedicated LISTEN connection that tells the cache what changed, with reconnects.
import type pino from 'pino'
import postgres from 'postgres'

export interface ListenerOptions {
  readonly url: string
  readonly channel: string
  readonly onNotify: (payload: string) => void
  /** The connection is listening (first time or after a reconnect). */
  readonly onListening: (reconnected: boolean) => void
  /** The connection dropped: notifications may have been missed. */
  readonly onLost: () => void
  readonly logger?: pino.Logger | undefined
  /** Reconnect backoff: first delay and cap, ms (doubling, with jitter). */
  readonly backoffMs?: { readonly initial: number; readonly max: number }
  /** A `select 1` on the listening connection this often finds a connection that died silently. */
  readonly heartbeatMs?: number
  readonly timeoutMs: number
}

export interface Listener {
  readonly listening: boolean
  /** Resolves after the first attempt, listening or not (later attempts continue in the background). */
  start(): Promise<void>
  close(): Promise<void>
}

/**
 * postgres.js' own `sql.listen` re-listens after a drop, but it hides the drop (its `onclose` is
 * internal) and swallows a failed re-listen; the cache must know the moment it stops hearing, so
 * this owns one single-connection client per attempt and decides itself when to retry.
 */
export function createListener(options: ListenerOptions): Listener {
  return new PgListener(options)
}

class PgListener implements Listener {
  readonly #options: ListenerOptions
  readonly #listenStatement: string
  readonly #initialMs: number
  readonly #maxMs: number
  readonly #heartbeatMs: number
  #sql: postgres.Sql | null = null
  /** Bumped for every connection attempt and drop: callbacks of an older connection are ignored. */
  #generation = 0
  #listening = false
  #everListened = false
  #closed = false
  #attempt = 0
  #retryTimer: NodeJS.Timeout | undefined
  #heartbeatTimer: NodeJS.Timeout | undefined
  #firstAttempt: Promise<void> | null = null
  #settleFirst: (() => void) | null = null

  constructor(options: ListenerOptions) {
    this.#options = options
    this.#listenStatement = `listen "${options.channel.replace(/"/g, '""')}"`
    this.#initialMs = options.backoffMs?.initial ?? 100
    this.#maxMs = options.backoffMs?.max ?? 5_000
    this.#heartbeatMs = options.heartbeatMs ?? 5_000
  }

  get listening(): boolean {
    return this.#listening
  }

  start(): Promise<void> {
    if (this.#firstAttempt === null) {
      this.#firstAttempt = new Promise((resolve) => {
        this.#settleFirst = resolve
      })
      this.#connect()
    }
    return this.#firstAttempt
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#generation++
    clearTimeout(this.#retryTimer)
    clearInterval(this.#heartbeatTimer)
    this.#listening = false
    this.#settle()
    const sql = this.#sql
    this.#sql = null
    if (sql !== null) await sql.end({ timeout: 0 }).catch(noop)
  }

  #settle(): void {
    const settle = this.#settleFirst
    this.#settleFirst = null
    settle?.()
  }

  #connect(): void {
    if (this.#closed) return
    const generation = ++this.#generation
    const options = {
      max: 1,
      // The listening connection must never be recycled: a recycle is a drop.
      idle_timeout: 0,
      max_lifetime: null,
      fetch_types: false,
      prepare: false,
      connect_timeout: Math.max(1, Math.ceil(this.#options.timeoutMs / 1000)),
      onnotice: noop,
      connection: { application_name: 'postgrest-gateway listener' },
      // postgres.js delivers NotificationResponse messages to `onnotify(channel, payload)`.
      onnotify: (_channel: string, payload: string) => {
        if (generation === this.#generation) this.#options.onNotify(payload)
      },
      onclose: () => this.#lost(generation, null),
    }
    const sql = postgres(this.#options.url, options as postgres.Options<Record<string, never>>)
    this.#sql = sql
    sql.unsafe(this.#listenStatement).then(
      () => {
        if (generation !== this.#generation || this.#closed) return
        const reconnected = this.#everListened
        this.#listening = true
        this.#everListened = true
        this.#attempt = 0
        this.#startHeartbeat(generation, sql)
        this.#options.logger?.info({ reconnected }, 'claims listener listening')
        this.#options.onListening(reconnected)
        this.#settle()
      },
      (err: unknown) => this.#lost(generation, err),
    )
  }

  #startHeartbeat(generation: number, sql: postgres.Sql): void {
    clearInterval(this.#heartbeatTimer)
    this.#heartbeatTimer = setInterval(() => {
      if (generation !== this.#generation) return
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('heartbeat timed out')), this.#options.timeoutMs)
      })
      const query = sql`select 1`
      query.catch(noop)
      Promise.race([query, timeout]).then(
        () => clearTimeout(timer),
        (err: unknown) => {
          clearTimeout(timer)
          this.#lost(generation, err)
        },
      )
    }, this.#heartbeatMs)
    this.#heartbeatTimer.unref()
  }

  #lost(generation: number, err: unknown): void {
    if (generation !== this.#generation || this.#closed) return
    // Later callbacks from this connection (its close after our end(), a late error) are ignored.
    this.#generation++
    clearInterval(this.#heartbeatTimer)
    const wasListening = this.#listening
    this.#listening = false
    const sql = this.#sql
    this.#sql = null
    sql?.end({ timeout: 0 }).catch(noop)
    const delay = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt) * (0.5 + Math.random() / 2)
    this.#attempt++
    const code = (err as { code?: unknown } | null)?.code
    if (wasListening) {
      this.#options.logger?.warn(
        { code, retryInMs: Math.round(delay) },
        'claims listener lost its connection',
      )
      this.#options.onLost()
    } else {
      this.#options.logger?.warn(
        { code, attempt: this.#attempt, retryInMs: Math.round(delay) },
        'claims listener cannot connect',
      )
    }
    this.#settle()
    this.#retryTimer = setTimeout(() => this.#connect(), delay)
    this.#retryTimer.unref()
  }
}

function noop(): void {}
