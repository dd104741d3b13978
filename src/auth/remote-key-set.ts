// Verify's keys from a JWKS URL: fetched at start, refreshed per Cache-Control, refetched on an unknown kid.
import type { Logger } from 'pino'
import { request } from 'undici'
import { GatewayError } from '../errors/index.js'
import type { Metrics } from '../observability/metrics.js'
import {
  createCandidateIndex,
  importJwks,
  type JwsAlg,
  type KeySource,
  type StaticKeySet,
  type VerifyKey,
} from './key-set.js'

export interface RemoteKeySetOptions {
  readonly url: string
  /** Longest a fetched set is trusted; `Cache-Control: max-age` is capped by it. Default 600. */
  readonly maxAgeSeconds?: number
  /** Least time between two fetches caused by an unknown `kid`, and between retries after a failure. */
  readonly cooldownSeconds: number
  readonly timeoutMs: number
  readonly metrics?: Metrics
  readonly logger?: Pick<Logger, 'warn' | 'info'>
}

export interface RemoteKeySet extends KeySource {
  /** Settles after the first fetch attempt (whatever its outcome). */
  readonly loaded: Promise<void>
  /** Fetches now unless a fetch is already running (shared). */
  refresh(): Promise<void>
  close(): void
}

const EMPTY: readonly VerifyKey[] = Object.freeze([])
const MAX_BODY_BYTES = 1024 * 1024

/** `max-age` in seconds from a Cache-Control header, or null (RFC 9111 5.2.2.1). */
export function maxAgeOf(cacheControl: string | string[] | undefined): number | null {
  const value = Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl
  if (value === undefined) return null
  for (const directive of value.split(',')) {
    const [name, arg] = directive.trim().split('=', 2) as [string, string | undefined]
    const lower = name.toLowerCase()
    if (lower === 'no-store' || lower === 'no-cache') return 0
    if (lower === 'max-age' && arg !== undefined) {
      const seconds = Number.parseInt(arg.replace(/^"|"$/g, ''), 10)
      if (Number.isFinite(seconds) && seconds >= 0) return seconds
    }
  }
  return null
}

/** Identity of a key's material, to notice removals (revocation) across refreshes. */
function fingerprint(key: VerifyKey): string {
  const material =
    key.key.type === 'secret'
      ? key.key.export().toString('base64url')
      : JSON.stringify(key.key.export({ format: 'jwk' }))
  return `${key.kid}|${key.alg}|${material}`
}

class JwksKeySet implements RemoteKeySet {
  readonly #url: string
  readonly #maxAgeMs: number
  readonly #cooldownMs: number
  readonly #timeoutMs: number
  readonly #metrics: Metrics | undefined
  readonly #logger: Pick<Logger, 'warn' | 'info'> | undefined
  #index: { candidates(alg: JwsAlg, kid: string | null): readonly VerifyKey[] } = { candidates: () => EMPTY }
  #kids = new Set<string>()
  #fingerprints = new Set<string>()
  #size = 0
  #ready = false
  #epoch = 0
  #fetching: Promise<void> | null = null
  #lastUnknownKidFetch = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | null = null
  #closed = false
  readonly loaded: Promise<void>

  constructor(options: RemoteKeySetOptions) {
    this.#url = options.url
    this.#maxAgeMs = (options.maxAgeSeconds ?? 600) * 1000
    this.#cooldownMs = options.cooldownSeconds * 1000
    this.#timeoutMs = options.timeoutMs
    this.#metrics = options.metrics
    this.#logger = options.logger
    this.loaded = this.refresh()
  }

  get ready(): boolean {
    return this.#ready
  }

  get epoch(): number {
    return this.#epoch
  }

  get size(): number {
    return this.#size
  }

  candidates(alg: JwsAlg, kid: string | null): readonly VerifyKey[] | Promise<readonly VerifyKey[]> {
    if (!this.#ready) {
      // Nothing loaded yet: wait for the running (or a new) fetch, then answer or give up (503).
      return this.refresh().then(() => {
        if (!this.#ready) throw new GatewayError('KeysUnavailable', { reason: 'no JWKS loaded yet' })
        return this.#index.candidates(alg, kid)
      })
    }
    if (kid !== null && !this.#kids.has(kid) && !this.#closed) {
      // An unknown kid may be a key published since the last fetch (rotation): refetch, at most
      // once per cooldown; concurrent requests share the fetch. Otherwise answer from what we have.
      const now = Date.now()
      if (this.#fetching !== null) return this.#fetching.then(() => this.#index.candidates(alg, kid))
      if (now - this.#lastUnknownKidFetch >= this.#cooldownMs) {
        this.#lastUnknownKidFetch = now
        return this.refresh().then(() => this.#index.candidates(alg, kid))
      }
    }
    return this.#index.candidates(alg, kid)
  }

  refresh(): Promise<void> {
    if (this.#fetching !== null) return this.#fetching
    if (this.#closed) return Promise.resolve()
    this.#fetching = this.#fetch().finally(() => {
      this.#fetching = null
    })
    return this.#fetching
  }

  close(): void {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  async #fetch(): Promise<void> {
    let nextMs: number
    try {
      const { statusCode, headers, body } = await request(this.#url, {
        method: 'GET',
        headers: { accept: 'application/json' },
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
        signal: AbortSignal.timeout(this.#timeoutMs),
      })
      if (statusCode !== 200) {
        await body.dump()
        throw new Error(`JWKS answered ${statusCode}`)
      }
      const text = await body.text()
      if (text.length > MAX_BODY_BYTES) throw new Error('JWKS response is too large')
      const json: unknown = JSON.parse(text)
      const keys = (json as { keys?: unknown } | null)?.keys
      if (!Array.isArray(keys)) throw new Error('JWKS response has no "keys" array')
      const imported = importJwks(keys)
      if (imported.keys.length === 0 && keys.length > 0)
        throw new Error('JWKS has no usable verification key')
      this.#install(imported.keys)
      if (imported.skipped.length > 0) {
        this.#logger?.info(
          { url: this.#url, skipped: imported.skipped.map((s) => ({ kid: s.kid, reason: s.reason })) },
          'JWKS keys skipped',
        )
      }
      this.#metrics?.keysetFetches.labels('ok').inc()
      const maxAge = maxAgeOf(headers['cache-control'])
      nextMs = maxAge === null ? this.#maxAgeMs : Math.min(maxAge * 1000, this.#maxAgeMs)
    } catch (err) {
      // Keep the last good set; try again after the cooldown (at least one second).
      this.#metrics?.keysetFetches.labels('error').inc()
      this.#logger?.warn({ url: this.#url, err: (err as Error).message }, 'JWKS fetch failed')
      nextMs = this.#cooldownMs
    }
    this.#schedule(Math.max(nextMs, 1000))
  }

  #install(keys: readonly VerifyKey[]): void {
    const fingerprints = new Set(keys.map(fingerprint))
    for (const old of this.#fingerprints) {
      if (!fingerprints.has(old)) {
        // A key was withdrawn (revoked or rotated out): cached tokens must be verified again.
        this.#epoch++
        break
      }
    }
    const kids = new Set<string>()
    for (const key of keys) if (key.kid !== null) kids.add(key.kid)
    this.#index = createCandidateIndex(keys)
    this.#kids = kids
    this.#fingerprints = fingerprints
    this.#size = keys.length
    this.#ready = true
    this.#metrics?.keysetKeys.set(keys.length)
  }

  #schedule(ms: number): void {
    if (this.#closed) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.refresh()
    }, ms)
    this.#timer.unref()
  }
}

/**
 * Inbound keys from a JWKS URL (Supabase: `<project>/auth/v1/.well-known/jwks.json`). Fetched with
 * undici at creation (`ready` is false until a first good set), refreshed when `Cache-Control:
 * max-age` runs out (capped by `maxAgeSeconds`), refetched on an unknown `kid` at most once per
 * cooldown. A failed fetch keeps the last good set. `close()` stops the timers.
 */
export function createRemoteKeySet(options: RemoteKeySetOptions): RemoteKeySet {
  return new JwksKeySet(options)
}

/**
 * Static keys (`jwt-secret`) and a remote set together, as one source: jose-jwt semantics over the
 * union. A token whose `kid` names a static key never causes a remote fetch, and static keys keep
 * working while the remote set is not loaded yet.
 */
export function combineKeySets(staticKeys: StaticKeySet, remote: KeySource): KeySource {
  return {
    candidates(alg, kid) {
      const local = staticKeys.candidates(alg, kid)
      if (local.length > 0 && (kid !== null || !remote.ready)) return local
      const fromRemote = remote.candidates(alg, kid)
      if (local.length === 0) return fromRemote
      if (fromRemote instanceof Promise)
        return fromRemote.then((list) => (list.length === 0 ? local : [...local, ...list]))
      return fromRemote.length === 0 ? local : [...local, ...fromRemote]
    },
    get ready() {
      return remote.ready
    },
    get epoch() {
      return remote.epoch
    },
    get size() {
      return staticKeys.size + remote.size
    },
  }
}
