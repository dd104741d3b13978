// Claims stage: the bounded, time-aware cache behind freshen (fresh, stale-while-revalidate, coalescing).
import { LRUCache } from 'lru-cache'

/** One cached answer and how long it may be trusted. */
class Entry<V> {
  readonly value: V
  /** The cache it belongs to (a kept entry is only honoured by its own cache). */
  readonly cache: RecordCache<V>
  /** Epoch ms until which the value is served without asking the database. */
  expiresAt: number
  /** Set when the listener dropped or an unreadable notification arrived: revalidate before serving. */
  mustRevalidate: boolean
  /** Its key was invalidated: never served again, kept only so a reload can compare content. */
  evicted: boolean
  /** Still the LRU's entry for its key: false once replaced by a reload, dropped for room or cleared. */
  held: boolean

  constructor(cache: RecordCache<V>, value: V, expiresAt: number) {
    this.cache = cache
    this.value = value
    this.expiresAt = expiresAt
    this.mustRevalidate = false
    this.evicted = false
    this.held = true
  }
}

/** A load in progress; all concurrent misses for one key wait on it. */
class Pending<V> {
  promise: Promise<V> | null = null
  /** An invalidation arrived while loading: the answer may predate the change, do not cache it. */
  superseded = false
}

export type RecordCacheEvent = 'hit' | 'miss' | 'stale'

export interface RecordCacheOptions<V> {
  readonly max: number
  /** How long past its fresh window an entry may still be served while the database fails. */
  readonly maxStaleMs: number
  /** Loads the value; rejects only when the database cannot answer. */
  readonly load: (key: string) => Promise<V>
  /** The trust window for an answer loaded now (shorter while the listener is down). */
  readonly freshMs: () => number
  readonly now: () => number
  readonly onEvent?: ((event: RecordCacheEvent) => void) | undefined
}

/**
 * `get` answers synchronously while an entry is fresh, so the hot path never awaits. Past its
 * window an entry is served while one background refresh runs (stale-while-revalidate), except
 * after `expireAll` (listener dropped): then it is revalidated first and served only if the
 * database fails, for at most `maxStaleMs`. Nothing older than that is ever served.
 */
export class RecordCache<V> {
  readonly #lru: LRUCache<string, Entry<V>>
  readonly #inflight = new Map<string, Pending<V>>()
  readonly #maxStaleMs: number
  readonly #load: (key: string) => Promise<V>
  readonly #freshMs: () => number
  readonly #now: () => number
  readonly #onEvent: (event: RecordCacheEvent) => void
  /** The last load failed: serve stale entries at once instead of waiting on a dead database. */
  #failing = false

  constructor(options: RecordCacheOptions<V>) {
    this.#lru = new LRUCache<string, Entry<V>>({ max: options.max, dispose: release })
    this.#maxStaleMs = options.maxStaleMs
    this.#load = options.load
    this.#freshMs = options.freshMs
    this.#now = options.now
    this.#onEvent = options.onEvent ?? noop
  }

  get size(): number {
    return this.#lru.size
  }

  /** True while the last load failed (the database did not answer). */
  get failing(): boolean {
    return this.#failing
  }

  get(key: string, now: number): V | Promise<V> {
    const entry = this.#lru.get(key)
    if (entry !== undefined && !entry.evicted) {
      if (now < entry.expiresAt) {
        this.#onEvent('hit')
        return entry.value
      }
      if (now - entry.expiresAt <= this.#maxStaleMs) {
        if (!entry.mustRevalidate || this.#failing) {
          this.#onEvent('stale')
          if (!this.#inflight.has(key)) this.#start(key).promise?.catch(noop)
          return entry.value
        }
        this.#onEvent('miss')
        return this.#loadOrStale(key, entry)
      }
    }
    this.#onEvent('miss')
    return (this.#inflight.get(key) ?? this.#start(key)).promise as Promise<V>
  }

  /**
   * The entry behind the key's current answer, for a caller to keep beside its key (the claims
   * stage keeps it on the cached token) and hand to {@link kept} on the next request.
   */
  entryOf(key: string): object | undefined {
    return this.#lru.peek(key)
  }

  /**
   * The value of a kept entry while `get` would answer it as a hit (held, not evicted, fresh), or
   * undefined: then ask `get`. The hot path's answer without the LRU: no key lookup and no recency
   * update, so under load it touches one object instead of the LRU's map and lists. Recency is
   * then that of the last load (at least once per fresh window for a user who keeps coming), which
   * only orders what is dropped for room.
   */
  kept(entry: unknown, now: number): V | undefined {
    if (
      entry instanceof Entry &&
      entry.cache === this &&
      entry.held &&
      !entry.evicted &&
      now < entry.expiresAt
    ) {
      this.#onEvent('hit')
      return (entry as Entry<V>).value
    }
    return undefined
  }

  /** The last value loaded for the key, even if stale or evicted, without touching recency. */
  peek(key: string): V | undefined {
    return this.#lru.peek(key)?.value
  }

  /** Stops serving one key, and makes a load in flight for it start over for later callers. */
  evict(key: string): void {
    const entry = this.#lru.peek(key)
    if (entry !== undefined) entry.evicted = true
    const pending = this.#inflight.get(key)
    if (pending !== undefined) {
      pending.superseded = true
      this.#inflight.delete(key)
    }
  }

  /**
   * Nothing cached may be trusted any more (listener dropped, unreadable notification). Entries
   * are kept only as a fallback while the database fails: each is revalidated before it is served.
   */
  expireAll(): void {
    const now = this.#now()
    for (const entry of this.#lru.values()) {
      if (entry.expiresAt > now) entry.expiresAt = now
      entry.mustRevalidate = true
    }
    for (const pending of this.#inflight.values()) pending.superseded = true
    this.#inflight.clear()
  }

  clear(): void {
    this.#lru.clear()
    for (const pending of this.#inflight.values()) pending.superseded = true
    this.#inflight.clear()
  }

  #loadOrStale(key: string, stale: Entry<V>): Promise<V> {
    const pending = this.#inflight.get(key) ?? this.#start(key)
    return (pending.promise as Promise<V>).catch((err: unknown) => {
      // Serve the old answer only if nothing evicted it meanwhile and it is within maxStale.
      if (this.#lru.peek(key) === stale && this.#now() - stale.expiresAt <= this.#maxStaleMs) {
        this.#onEvent('stale')
        return stale.value
      }
      throw err
    })
  }

  #start(key: string): Pending<V> {
    const pending = new Pending<V>()
    // The answer is as old as the moment the query started: the window counts from there.
    const expiresAt = this.#now() + this.#freshMs()
    this.#inflight.set(key, pending)
    pending.promise = this.#load(key).then(
      (value) => {
        if (this.#inflight.get(key) === pending) this.#inflight.delete(key)
        this.#failing = false
        if (!pending.superseded) this.#lru.set(key, new Entry(this, value, expiresAt))
        return value
      },
      (err: unknown) => {
        if (this.#inflight.get(key) === pending) this.#inflight.delete(key)
        this.#failing = true
        throw err
      },
    )
    return pending
  }
}

/** The LRU let go of an entry (replaced, dropped for room, deleted, cleared): kept copies stop answering. */
function release<V>(entry: Entry<V>): void {
  entry.held = false
}

function noop(): void {}
