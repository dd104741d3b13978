// Forward stage, memory: the body chunks that passed through are freed every few megabytes.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * Every socket read gets a fresh Buffer with its own memory outside the JS heap. Once a body chunk
 * is written on it is garbage, but its memory is only freed when V8 collects the young generation
 * the Buffer lives in. A streamed body allocates little besides its chunks, so with a young
 * generation sized for API traffic (16 MB per semi-space, more on Node 24) a 100 MB upload or
 * download would pass almost whole before the next collection. Counting the body bytes and asking
 * for a young-generation collection (a scavenge: a millisecond or so, the same work V8 does on its
 * own) every {@link SPENT_LIMIT} bytes bounds that memory, whatever the young generation's size.
 * API-sized bodies reach the limit rarely: at 10,000 responses of 1 KB per second, about every 1.7 s,
 * against several natural scavenges per second.
 */
export const SPENT_LIMIT = 16 * 1024 * 1024

/**
 * V8's `gc()` with `{ type: 'minor' }` (a scavenge), taken from a fresh context with `--expose-gc`
 * set for the moment it is made: the process's own global gets no `gc`. Null where V8 refuses.
 */
function youngCollector(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    if (typeof gc !== 'function') return null
    return () => gc({ type: 'minor' })
  } catch {
    return null
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}

export class SpentBuffers {
  readonly #collect: (() => void) | null
  readonly #limit: number
  /** Body bytes passed since the last collection this counter asked for. */
  #passed: number
  /** Collections asked for (read by tests). */
  collections: number

  constructor(limit = SPENT_LIMIT, collect = youngCollector()) {
    this.#collect = collect
    this.#limit = limit
    this.#passed = 0
    this.collections = 0
  }

  /** Counts `bytes` of body that passed through (either direction). */
  passed(bytes: number): void {
    this.#passed += bytes
    if (this.#passed < this.#limit) return
    this.#passed = 0
    if (this.#collect === null) return
    this.collections++
    this.#collect()
  }
}
