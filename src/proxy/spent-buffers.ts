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

type Gc = (options: { type: 'minor' }) => void

/**
 * V8's `gc`, from the `--expose-gc` every launch of the gateway passes (NODE_FLAGS), taken once when
 * this module loads and cleared from the global, so no other code in the process can ask for
 * collections. Null when the process was started without the flag.
 */
const EXPOSED_GC: Gc | null = takeExposedGc()

function takeExposedGc(): Gc | null {
  const global = globalThis as { gc?: unknown }
  const gc = global.gc
  if (typeof gc !== 'function') return null
  // The property is not configurable (no `delete`), but it is writable.
  global.gc = undefined
  return gc as Gc
}

/**
 * For a process started without NODE_FLAGS: `gc` taken from a fresh context with `--expose-gc` set
 * for the moment it is made. Null where V8 refuses. Made on the first collection only, not at
 * startup: while a second context is alive, the collections Node 24's V8 makes when the process
 * turns idle (its memory reducer) discarded the optimized code of about 100 of the gateway's
 * functions, which then ran in lower tiers while V8 compiled them again. Measured at 256
 * connections, in rounds with idle spells between them: 1.19-1.20x the bare proxy's CPU per request
 * with the context made at startup, 1.12-1.14x without it.
 */
function contextGc(): Gc | null {
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    return typeof gc === 'function' ? (gc as Gc) : null
  } catch {
    return null
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}

/** The collector in use: the exposed `gc`; undefined until a context's is needed, null if refused. */
let collector: Gc | null | undefined = EXPOSED_GC ?? undefined

/** Asks V8 for a young-generation collection (a scavenge), with the first collector available. */
function collectYoung(): void {
  if (collector === undefined) collector = contextGc()
  collector?.({ type: 'minor' })
}

export class SpentBuffers {
  readonly #collect: (() => void) | null
  readonly #limit: number
  /** Body bytes passed since the last collection this counter asked for. */
  #passed: number
  /** Collections asked for (read by tests). */
  collections: number

  constructor(limit = SPENT_LIMIT, collect: (() => void) | null = collectYoung) {
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
