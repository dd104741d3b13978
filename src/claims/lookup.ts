// Claims stage: the parameterised user and session queries, on a small postgres.js pool with timeouts.
import postgres from 'postgres'
import { type DbConfig, DEFAULT_SESSION_QUERY, DEFAULT_USER_QUERY } from '../config/types.js'

/** What the user query said about one user id; `null` from {@link Lookup.user} = no such user. */
export interface UserRow {
  readonly appMetadata: Readonly<Record<string, unknown>>
  readonly role: string | null
  /** Epoch ms, 0 = not banned. */
  readonly bannedUntil: number
  readonly deleted: boolean
}

/** What the session query said; `null` from {@link Lookup.session} = no such session. */
export interface SessionRow {
  /** Epoch ms after which the session is over, `Infinity` when `not_after` is null or absent. */
  readonly notAfter: number
}

/** A session without `not_after` (the usual case): one shared row instead of one per cached session. */
const OPEN_SESSION: SessionRow = Object.freeze({ notAfter: Number.POSITIVE_INFINITY })

export interface Lookup {
  /** User queries sent to the database (ids that cannot match are answered without one). */
  readonly userQueries: number
  /** Rejects only when the database cannot answer (connection, timeout, a broken query). */
  user(id: string): Promise<UserRow | null>
  session(id: string): Promise<SessionRow | null>
  /** Opens one connection so that a broken URL shows at start; never rejects. */
  warm(): Promise<boolean>
  close(): Promise<void>
}

/** Why a lookup failed; the message never holds SQL, ids or values. */
export class LookupFailed extends Error {
  readonly reason: 'timeout' | 'error'
  constructor(reason: 'timeout' | 'error', cause?: unknown) {
    super(reason === 'timeout' ? 'claims lookup timed out' : 'claims lookup failed', { cause })
    this.name = 'LookupFailed'
    this.reason = reason
  }
}

// auth.users.id and auth.sessions.id are uuids: any other text cannot match, and sending it would
// make PostgreSQL fail the cast (22P02) at the cost of a round trip.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const INVALID_TEXT_REPRESENTATION = '22P02'

export function createLookup(db: DbConfig & { readonly url: string }): Lookup {
  const timeoutMs = db.lookupTimeoutMs
  const sql = postgres(db.url, {
    max: db.poolSize,
    prepare: true,
    // Built-in types only (jsonb, text, timestamptz): no type-fetching round trip on connect.
    fetch_types: false,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    idle_timeout: 0,
    // postgres.js' default backoff grows to 20 s; a recovered database must be used within ~2 s.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 2),
    onnotice: noop,
    connection: { application_name: 'postgrest-gateway', statement_timeout: timeoutMs },
  })
  const userCheckUuid = db.userQuery === DEFAULT_USER_QUERY
  const sessionCheckUuid = db.sessionQuery === DEFAULT_SESSION_QUERY
  const userQuery = db.userQuery
  const sessionQuery = db.sessionQuery

  async function first(text: string, id: string): Promise<Record<string, unknown> | null> {
    const query = sql.unsafe(text, [id], { prepare: true })
    let timer: NodeJS.Timeout | undefined
    // statement_timeout bounds the server side; this bounds the client side too (connect, network):
    // a lookup that hangs must not hang the request.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new LookupFailed('timeout'))
        cancelQuietly(query)
      }, timeoutMs)
    })
    try {
      const rows = await Promise.race([query, timeout])
      return (rows[0] as Record<string, unknown> | undefined) ?? null
    } catch (err) {
      if (err instanceof LookupFailed) throw err
      // A custom query that casts its parameter: text that cannot be an id matches nobody.
      if ((err as { code?: unknown }).code === INVALID_TEXT_REPRESENTATION) return null
      if ((err as { code?: unknown }).code === '57014') throw new LookupFailed('timeout', err)
      throw new LookupFailed('error', err)
    } finally {
      clearTimeout(timer)
      // The losing side of the race must not become an unhandled rejection.
      query.catch(noop)
    }
  }

  let userQueries = 0
  return {
    get userQueries() {
      return userQueries
    },
    async user(id) {
      if (userCheckUuid && !UUID.test(id)) return null
      userQueries++
      const row = await first(userQuery, id)
      return row === null ? null : toUserRow(row)
    },
    async session(id) {
      if (sessionQuery === null) return OPEN_SESSION
      if (sessionCheckUuid && !UUID.test(id)) return null
      const row = await first(sessionQuery, id)
      if (row === null) return null
      const notAfter = toMs(row['not_after'])
      return notAfter === null ? OPEN_SESSION : { notAfter }
    },
    async warm() {
      try {
        await sql`select 1`
        return true
      } catch {
        return false
      }
    },
    async close() {
      await sql.end({ timeout: 1 })
    },
  }
}

/**
 * postgres.js' `query.cancel()` returns `null` and drops the Promise of its cancel request, which
 * rejects when the cancel connection fails (ECONNREFUSED once the database is unreachable): an
 * unhandled rejection, and the process exits on one. So the query's canceller is called here, with
 * its outcome swallowed; without one (a postgres.js that changed), statement_timeout still ends the
 * statement on the server.
 */
function cancelQuietly(query: object): void {
  const target = query as { canceller?: unknown; active?: unknown }
  // Only a statement running on the server is cancelled. One still waiting for its connection
  // (PostgreSQL restarting) would be marked cancelled inside the connection's queue, and the pool
  // then never ran a query again; left alone, it runs or fails with its connection, and
  // statement_timeout bounds it.
  if (target.active !== true) return
  const canceller = target.canceller
  if (typeof canceller !== 'function') return
  // As `Query.cancel()` does: a query is cancelled at most once.
  target.canceller = null
  try {
    const cancelled: unknown = canceller(query)
    if (cancelled instanceof Promise) cancelled.catch(noop)
  } catch {
    // the query finished meanwhile
  }
}

function toUserRow(row: Record<string, unknown>): UserRow {
  const raw = 'app_metadata' in row ? row['app_metadata'] : row['raw_app_meta_data']
  const role = row['role']
  return {
    appMetadata: deepFreeze(toObject(raw)),
    role: typeof role === 'string' ? role : null,
    bannedUntil: toMs(row['banned_until']) ?? 0,
    deleted: row['deleted_at'] !== null && row['deleted_at'] !== undefined,
  }
}

/** jsonb arrives parsed; a json-in-text column arrives as a string; anything else is no metadata. */
function toObject(value: unknown): Record<string, unknown> {
  let parsed = value
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value)
    } catch {
      return {}
    }
  }
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
    return parsed as Record<string, unknown>
  }
  return {}
}

function toMs(value: unknown): number | null {
  if (value instanceof Date) return value.getTime()
  if (typeof value === 'string' || typeof value === 'number') {
    const ms = new Date(value).getTime()
    return Number.isNaN(ms) ? null : ms
  }
  return null
}

/** The cached metadata is shared by every request of that user: nobody may change it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
  }
  return value
}

function noop(): void {}
