// Claims stage (freshen): verified token -> the user's current claims, cached, invalidated by NOTIFY.
import type pino from 'pino'
import type { VerifiedToken } from '../auth/types.js'
import type { ClaimsConfig, DbConfig } from '../config/types.js'
import { GatewayError } from '../errors/index.js'
import type { Metrics } from '../observability/metrics.js'
import { createListener, type Listener } from './listener.js'
import { createLookup, type Lookup, LookupFailed, type SessionRow, type UserRow } from './lookup.js'
import { parseInvalidation } from './payload.js'
import { RecordCache, type RecordCacheEvent } from './record-cache.js'
import type { ClaimsStore, FreshClaims } from './types.js'

export interface ClaimsStoreOptions {
  readonly db: DbConfig
  readonly claims: ClaimsConfig
  readonly metrics?: Metrics | undefined
  readonly logger?: pino.Logger | undefined
  /** Wall clock in ms (bans and `not_after` are wall-clock times). */
  readonly now?: (() => number) | undefined
  /** Listener reconnect backoff and heartbeat (tests shorten them). */
  readonly listener?: {
    readonly backoffMs?: { readonly initial: number; readonly max: number }
    readonly heartbeatMs?: number
  }
}

class Claims implements FreshClaims {
  readonly userId: string
  readonly appMetadata: Readonly<Record<string, unknown>>
  readonly role: string | null
  readonly version: number
  readonly source: 'database' | 'token'

  constructor(
    userId: string,
    appMetadata: Readonly<Record<string, unknown>>,
    role: string | null,
    version: number,
    source: 'database' | 'token',
  ) {
    this.userId = userId
    this.appMetadata = appMetadata
    this.role = role
    this.version = version
    this.source = source
  }
}

type Revocation = 'UserNotFound' | 'UserDeleted' | null

/** A cached answer of the user query, including "no such user" (so revoked users cost no queries). */
class UserRecord {
  readonly claims: Claims | null
  readonly revoked: Revocation
  readonly bannedUntil: number
  /** Hash of the content: a reload with the same content keeps the version. */
  readonly fingerprint: number

  constructor(claims: Claims | null, revoked: Revocation, bannedUntil: number, fingerprint: number) {
    this.claims = claims
    this.revoked = revoked
    this.bannedUntil = bannedUntil
    this.fingerprint = fingerprint
  }
}

const NO_SESSION: SessionRow = Object.freeze({ notAfter: Number.NEGATIVE_INFINITY })
const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({})
/** Distinct app_metadata contents (and roles) kept for sharing between users. */
const SHARED_ENTRIES = 1024

/**
 * Creates the freshen stage. With `db.url` null there is no database: claims come from the token.
 */
export function createClaimsStore(options: ClaimsStoreOptions): ClaimsStore {
  const { db } = options
  if (db.url === null) return new TokenClaimsStore()
  return new PgClaimsStore(options, { ...db, url: db.url })
}

/** No database configured: every caller's claims are the token's own. */
class TokenClaimsStore implements ClaimsStore {
  readonly listening = true
  readonly lookups = 0
  freshen(token: VerifiedToken): FreshClaims {
    return tokenClaims(token)
  }
  onInvalidate(): void {}
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}

class PgClaimsStore implements ClaimsStore {
  readonly #lookup: Lookup
  readonly #listener: Listener
  readonly #users: RecordCache<UserRecord>
  readonly #sessions: RecordCache<SessionRow> | null
  readonly #now: () => number
  readonly #tokenFallback: boolean
  readonly #ttlMs: number
  readonly #disconnectedTtlMs: number
  readonly #logger: pino.Logger | undefined
  readonly #invalidateListeners: Array<(userId: string | null) => void> = []
  readonly #metrics: Metrics | undefined
  #version = 0
  readonly #appMetadata = new Map<string, Readonly<Record<string, unknown>>>()
  readonly #roles = new Map<string, string>()
  // Cache hits are tallied in a plain integer and added to the counter at scrape time and once a
  // second (a bound prom-client child's inc() per hit was a share of every cached request).
  #pendingHits = 0
  #hitCounter: { inc(n?: number): void } | null = null
  #flushTimer: NodeJS.Timeout | null = null
  #offCollect: (() => void) | null = null

  constructor(options: ClaimsStoreOptions, db: DbConfig & { readonly url: string }) {
    const claims = options.claims
    const metrics = options.metrics
    this.#metrics = metrics
    this.#now = options.now ?? Date.now
    this.#tokenFallback = claims.onDatabaseDown === 'token'
    this.#ttlMs = claims.ttlSeconds * 1000
    this.#disconnectedTtlMs = Math.min(claims.ttlSeconds, claims.disconnectedTtlSeconds) * 1000
    this.#logger = options.logger?.child({ stage: 'claims' })
    this.#lookup = createLookup(db)

    const onEvent = this.#bindCacheEvents(metrics)
    const freshMs = (): number => (this.#listener.listening ? this.#ttlMs : this.#disconnectedTtlMs)
    this.#users = new RecordCache<UserRecord>({
      max: claims.cacheMaxEntries,
      maxStaleMs: claims.maxStaleSeconds * 1000,
      load: (id) => this.#loadUser(id),
      freshMs,
      now: this.#now,
      onEvent,
    })
    this.#sessions =
      db.sessionQuery === null
        ? null
        : new RecordCache<SessionRow>({
            max: claims.cacheMaxEntries,
            maxStaleMs: claims.maxStaleSeconds * 1000,
            load: (id) => this.#loadSession(id),
            freshMs,
            now: this.#now,
          })

    const listenerOptions = options.listener
    this.#listener = createListener({
      url: db.url,
      channel: db.notifyChannel,
      timeoutMs: db.lookupTimeoutMs,
      logger: this.#logger,
      onNotify: (payload) => this.#onNotify(payload),
      onListening: (reconnected) => {
        metrics?.listenerConnected.set(1)
        // Changes made while the connection was down were never announced.
        if (reconnected) this.#expireAll('reconnect')
      },
      onLost: () => {
        metrics?.listenerConnected.set(0)
        this.#expireAll('disconnect')
      },
      ...(listenerOptions?.backoffMs === undefined ? {} : { backoffMs: listenerOptions.backoffMs }),
      ...(listenerOptions?.heartbeatMs === undefined ? {} : { heartbeatMs: listenerOptions.heartbeatMs }),
    })
    metrics?.listenerConnected.set(0)
  }

  get listening(): boolean {
    return this.#listener.listening
  }

  get lookups(): number {
    return this.#lookup.userQueries
  }

  freshen(token: VerifiedToken): FreshClaims | Promise<FreshClaims> {
    const sub = token.sub
    if (sub === null) {
      // Tokens without `sub` are forwarded as they are (DESIGN.md): reaching here is a wiring bug.
      throw new GatewayError('Internal', { reason: 'freshen called for a token without sub' })
    }
    const now = this.#now()
    // The entry kept on the token answers a cached user without a lookup; `get` does the rest.
    const kept = this.#users.kept(token.freshUser, now)
    if (kept !== undefined) return this.#checkUser(kept, token, now)
    const user = this.#users.get(sub, now)
    if (user instanceof Promise) {
      return user.then(
        (record) => this.#checkUser(record, token, this.#now()),
        (err: unknown) => this.#unavailable(err, token),
      )
    }
    token.freshUser = this.#users.entryOf(sub)
    return this.#checkUser(user, token, now)
  }

  onInvalidate(listener: (userId: string | null) => void): void {
    this.#invalidateListeners.push(listener)
  }

  async start(): Promise<void> {
    const [warm] = await Promise.all([this.#lookup.warm(), this.#listener.start()])
    if (!warm) this.#logger?.warn('claims database is not reachable yet')
  }

  async close(): Promise<void> {
    if (this.#flushTimer !== null) clearInterval(this.#flushTimer)
    this.#flushTimer = null
    this.#offCollect?.()
    this.#offCollect = null
    this.#flushHits()
    await Promise.all([this.#listener.close(), this.#lookup.close()])
    this.#metrics?.listenerConnected.set(0)
  }

  /** Metric children bound once; the cache reports events through one prepared function. */
  #bindCacheEvents(metrics: Metrics | undefined): ((event: RecordCacheEvent) => void) | undefined {
    if (metrics === undefined) return undefined
    this.#hitCounter = metrics.claimsCache.labels('hit')
    const miss = metrics.claimsCache.labels('miss')
    const stale = metrics.claimsCache.labels('stale')
    this.#flushTimer = setInterval(() => this.#flushHits(), 1000)
    this.#flushTimer.unref()
    this.#offCollect = metrics.onCollect(() => this.#flushHits())
    return (event) => {
      if (event === 'hit') this.#pendingHits++
      else if (event === 'miss') miss.inc()
      else stale.inc()
    }
  }

  #flushHits(): void {
    if (this.#hitCounter === null || this.#pendingHits === 0) return
    this.#hitCounter.inc(this.#pendingHits)
    this.#pendingHits = 0
  }

  #checkUser(record: UserRecord, token: VerifiedToken, now: number): FreshClaims | Promise<FreshClaims> {
    if (record.revoked !== null) throw new GatewayError(record.revoked)
    // Evaluated on every use: a ban that expires lets the user back in without a reload.
    if (record.bannedUntil > now) throw new GatewayError('UserBanned')
    const claims = record.claims as Claims
    const sessionId = token.sessionId
    const sessions = this.#sessions
    if (sessionId === null || sessions === null) return claims
    const kept = sessions.kept(token.freshSession, now)
    if (kept !== undefined) return checkSession(kept, claims, now)
    const session = sessions.get(sessionId, now)
    if (session instanceof Promise) {
      return session.then(
        (row) => checkSession(row, claims, this.#now()),
        (err: unknown) => {
          if (this.#tokenFallback) return claims
          throw unavailable(err)
        },
      )
    }
    token.freshSession = sessions.entryOf(sessionId)
    return checkSession(session, claims, now)
  }

  #unavailable(err: unknown, token: VerifiedToken): FreshClaims {
    if (err instanceof GatewayError) throw err
    if (this.#tokenFallback) return tokenClaims(token)
    throw unavailable(err)
  }

  async #loadUser(id: string): Promise<UserRecord> {
    const metrics = this.#metrics
    const end = metrics?.claimsLookupDuration.startTimer()
    let row: UserRow | null
    try {
      row = await this.#lookup.user(id)
    } catch (err) {
      end?.()
      const reason = err instanceof LookupFailed ? err.reason : 'error'
      metrics?.claimsLookups.inc({ result: reason })
      this.#logger?.warn({ code: errorCode(err), reason }, 'claims lookup failed')
      throw err
    }
    end?.()
    if (row === null) {
      metrics?.claimsLookups.inc({ result: 'not_found' })
      return new UserRecord(null, 'UserNotFound', 0, 0)
    }
    metrics?.claimsLookups.inc({ result: 'found' })
    if (row.deleted) return new UserRecord(null, 'UserDeleted', 0, 0)
    // jsonb prints its keys in one canonical order, so equal content gives equal text. Only a
    // hash of it is kept per user (memory); equal hashes are confirmed on the text itself.
    const content = `${row.role ?? ''}\u0000${JSON.stringify(row.appMetadata)}`
    const fingerprint = fnv1a(content)
    const previous = this.#users.peek(id)
    const claims =
      previous?.claims != null &&
      previous.fingerprint === fingerprint &&
      `${previous.claims.role ?? ''}\u0000${JSON.stringify(previous.claims.appMetadata)}` === content
        ? previous.claims
        : new Claims(
            id,
            this.#shared(content, row),
            row.role === null ? null : this.#sharedRole(row.role),
            ++this.#version,
            'database',
          )
    return new UserRecord(claims, null, row.bannedUntil, fingerprint)
  }

  /**
   * Most users carry the same app_metadata (`{"provider":"email","providers":["email"]}`) and role:
   * equal content is kept once (the objects are deep-frozen, so sharing them is safe), which halves
   * a cached user's size. Bounded: distinct contents beyond it are simply not shared.
   */
  #shared(content: string, row: UserRow): Readonly<Record<string, unknown>> {
    const known = this.#appMetadata.get(content)
    if (known !== undefined) return known
    if (this.#appMetadata.size < SHARED_ENTRIES) this.#appMetadata.set(content, row.appMetadata)
    return row.appMetadata
  }

  #sharedRole(role: string): string {
    const known = this.#roles.get(role)
    if (known !== undefined) return known
    if (this.#roles.size < SHARED_ENTRIES) this.#roles.set(role, role)
    return role
  }

  async #loadSession(id: string): Promise<SessionRow> {
    try {
      return (await this.#lookup.session(id)) ?? NO_SESSION
    } catch (err) {
      this.#logger?.warn({ code: errorCode(err) }, 'session lookup failed')
      throw err
    }
  }

  #onNotify(payload: string): void {
    const invalidation = parseInvalidation(payload)
    switch (invalidation.kind) {
      case 'user':
        this.#metrics?.invalidations.inc({ kind: 'user' })
        this.#users.evict(invalidation.userId)
        this.#emit(invalidation.userId)
        return
      case 'session':
        this.#metrics?.invalidations.inc({ kind: 'session' })
        this.#sessions?.evict(invalidation.sessionId)
        return
      case 'all':
        this.#expireAll('all')
        return
    }
  }

  #expireAll(kind: 'all' | 'disconnect' | 'reconnect'): void {
    this.#metrics?.invalidations.inc({ kind })
    this.#logger?.info({ kind, entries: this.#users.size }, 'claims cache cleared')
    this.#users.expireAll()
    this.#sessions?.expireAll()
    this.#emit(null)
  }

  #emit(userId: string | null): void {
    for (const listener of this.#invalidateListeners) {
      try {
        listener(userId)
      } catch (err) {
        this.#logger?.error({ err }, 'invalidation listener failed')
      }
    }
  }
}

function checkSession(row: SessionRow, claims: Claims, now: number): Claims {
  // A deleted row (sign-out) or a passed `not_after` ends the session though its token lives on.
  if (row.notAfter <= now) throw new GatewayError('SessionRevoked')
  return claims
}

function unavailable(err: unknown): GatewayError {
  return new GatewayError('ClaimsUnavailable', {
    reason: err instanceof LookupFailed ? err.message : 'claims lookup failed',
    cause: err,
  })
}

/** The `onDatabaseDown: 'token'` fallback, and the no-database mode: the token's own claims. */
function tokenClaims(token: VerifiedToken): FreshClaims {
  const claims = token.claims
  const appMetadata = claims['app_metadata']
  const role = claims['role']
  return new Claims(
    token.sub ?? '',
    typeof appMetadata === 'object' && appMetadata !== null && !Array.isArray(appMetadata)
      ? (appMetadata as Record<string, unknown>)
      : EMPTY,
    typeof role === 'string' ? role : null,
    0,
    'token',
  )
}

function errorCode(err: unknown): unknown {
  const cause = err instanceof Error ? err.cause : undefined
  return (cause as { code?: unknown } | undefined)?.code ?? (err as { code?: unknown } | null)?.code
}

/** 30-bit FNV-1a of a string (a small integer: stored in the record without a boxed number). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5 | 0
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193)
  return hash & 0x3fffffff
}
