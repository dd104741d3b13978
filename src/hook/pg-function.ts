// Hook stage (Postgres): `select "<schema>"."<function>"(input)` under a statement timeout, as Supabase Auth runs it.
import postgres from 'postgres'
import { type Dispatcher, HookCallFailed, parseAnswer } from './dispatch.js'

export interface PgFunctionOptions {
  readonly dbUrl: string
  readonly schema: string
  readonly name: string
  readonly timeoutMs: number
  readonly maxResponseBytes: number
}

// supabase/auth internal/conf `postgresNamesRegexp`: plain identifiers only, so that quoting them
// (conf `PopulateExtensibilityPoint`: `fmt.Sprintf("%q.%q", schema, function)`) is exact.
export const PG_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,62}$/

const QUERY_CANCELED = '57014'
// Time for BEGIN, SET and the pool beyond the statement's own budget before the client gives up.
const CLIENT_MARGIN_MS = 500

const noop = () => {}

/**
 * A Postgres-function hook on its own small pool (2 connections). supabase/auth
 * internal/hooks/hookpgfunc `RunPostgresHook`: in a transaction, `set local statement_timeout`
 * (2 s by default), then `select <hook>(input)`; here also a client-side timer, so a database
 * that does not answer at all cannot hold a request.
 */
export function createPgFunction(options: PgFunctionOptions): Dispatcher {
  const { schema, name, timeoutMs, maxResponseBytes } = options
  if (!PG_NAME.test(schema) || !PG_NAME.test(name)) {
    throw new Error('GATEWAY_HOOK_URI (hook.uri): schema and function must be plain PostgreSQL identifiers')
  }
  const sql = postgres(options.dbUrl, {
    max: 2,
    prepare: true,
    fetch_types: false,
    connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
    idle_timeout: 60,
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 2),
    onnotice: noop,
    connection: { application_name: 'postgrest-gateway-hook' },
  })
  const setTimeoutSql = `set local statement_timeout = ${Math.trunc(timeoutMs)}`
  // The input goes as text and is cast: postgres.js would JSON-encode a string sent as jsonb again.
  // `::text` on the way back lets the size limit apply before parsing, as for an HTTP hook.
  const callSql = `select "${schema}"."${name}"($1::text::jsonb)::text as answer`
  const clientTimeoutMs = timeoutMs + CLIENT_MARGIN_MS

  async function run(input: string): Promise<string | null> {
    const rows = await sql.begin(async (tx) => {
      await tx.unsafe(setTimeoutSql)
      return await tx.unsafe(callSql, [input], { prepare: true })
    })
    const answer = (rows[0] as { answer?: unknown } | undefined)?.answer
    return typeof answer === 'string' ? answer : null
  }

  return {
    async call(input) {
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new HookCallFailed('timeout', `no answer from the database within ${clientTimeoutMs} ms`)),
          clientTimeoutMs,
        )
      })
      const pending = run(input)
      let text: string | null
      try {
        text = await Promise.race([pending, deadline])
      } catch (err) {
        if (err instanceof HookCallFailed) {
          // The transaction ends by itself when statement_timeout fires; only swallow its outcome.
          pending.catch(noop)
          throw err
        }
        const code = (err as { code?: unknown }).code
        if (code === QUERY_CANCELED) {
          throw new HookCallFailed(
            'timeout',
            `statement_timeout (${timeoutMs} ms) cancelled the hook function`,
          )
        }
        // An SQLSTATE (42883 undefined function, P0001 raised by the hook, 42501 no privilege) or a
        // connection failure; the message may quote data, so only the code is kept.
        const label = typeof code === 'string' ? code : 'unknown'
        throw new HookCallFailed('error', `the hook function failed (${label})`, err)
      } finally {
        clearTimeout(timer)
      }
      if (text === null) throw new HookCallFailed('invalid', 'the hook function returned null')
      if (Buffer.byteLength(text) > maxResponseBytes) {
        throw new HookCallFailed('invalid', `the answer is larger than ${maxResponseBytes} bytes`)
      }
      return parseAnswer(text)
    },
    async close() {
      await sql.end({ timeout: 1 })
    },
  }
}
