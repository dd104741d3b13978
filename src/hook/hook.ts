// Hook stage: freshen -> hook -> role. Runs a Supabase custom access token hook once per claims version.
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { Claims, VerifiedToken } from '../auth/types.js'
import type { HookConfig } from '../config/types.js'
import { GatewayError } from '../errors/index.js'
import type { Metrics } from '../observability/metrics.js'
import type { HookStage } from '../pipeline.js'
import type { CurrentUser } from '../role/map-role.js'
import { type Dispatcher, HookCallFailed } from './dispatch.js'
import { createHttpEndpoint } from './http-endpoint.js'
import { type HookOutcome, judgeOutput } from './output.js'
import { createPgFunction, PG_NAME } from './pg-function.js'
import { parseWebhookSecret } from './webhook-signature.js'

export interface HookOptions {
  readonly config: HookConfig
  /** Needed by a `pg-functions://` hook (its own pool of 2 connections). */
  readonly dbUrl: string | null
  readonly metrics?: Metrics
  readonly logger?: Logger
  /** HTTP hook: pause after a network error before retrying (default: a quarter of the timeout, at most 2 s). */
  readonly retryBackoffMs?: number
}

export interface Hook extends HookStage {
  /** Closes the hook's own database pool or HTTP connections. */
  close(): Promise<void>
}

export type HookTarget =
  | { readonly transport: 'pg-functions'; readonly schema: string; readonly name: string }
  | { readonly transport: 'http'; readonly url: URL }

const LOOPBACK: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

/** Supabase Auth's hook URI forms; throws an Error naming the option (never per request). */
export function parseHookUri(uri: string): HookTarget {
  const url = URL.parse(uri)
  const bad = () =>
    new Error(
      'GATEWAY_HOOK_URI (hook.uri) must be pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost',
    )
  if (url === null) throw bad()
  if (url.protocol === 'pg-functions:') {
    // supabase/auth internal/conf `validatePostgresPath`: /<schema>/<function>, plain identifiers.
    const parts = url.pathname.split('/')
    const schema = parts[1] ?? ''
    const name = parts[2] ?? ''
    if (url.host !== 'postgres' || parts.length !== 3 || !PG_NAME.test(schema) || !PG_NAME.test(name)) {
      throw bad()
    }
    return { transport: 'pg-functions', schema, name }
  }
  // Supabase accepts http: only for local development; so does the gateway.
  if (url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    return { transport: 'http', url }
  }
  throw bad()
}

/** One slot per verified token: the user record it was computed for (by identity) and the result. */
class Slot {
  readonly user: CurrentUser | null
  value: Readonly<Claims> | null = null
  refusal: GatewayError | null = null
  pending: Promise<Readonly<Claims>> | null = null

  constructor(user: CurrentUser | null) {
    this.user = user
  }
}

const AUTHENTICATION_METHOD = 'token_refresh'

/**
 * The hook input Supabase Auth sends (v0hooks `CustomAccessTokenInput`): `user_id`, the claims the
 * token would carry and `authentication_method`. The claims are the inbound token's with the
 * current `app_metadata` and, when the user record has one, its `role`: what Supabase would put
 * into a token issued now, on refresh.
 */
export function hookInput(token: VerifiedToken, user: CurrentUser | null): string {
  const claims: Claims = {}
  const source = token.claims
  for (const key in source) claims[key] = source[key]
  if (user !== null) {
    claims['app_metadata'] = user.appMetadata
    if (user.role !== null) claims['role'] = user.role
  }
  return JSON.stringify({ user_id: token.sub, claims, authentication_method: AUTHENTICATION_METHOD })
}

/**
 * The hook stage, or `null` when no hook is configured. The result is held per verified token
 * and user record (the claims stage hands out a new record object whenever the user changes), so
 * the hook runs once per claims version; a held result is returned synchronously, and concurrent
 * first requests share one call. A refusal is held like a result; failures are not.
 */
export function createHook(options: HookOptions): Hook | null {
  const { config, logger } = options
  if (config.uri === null) return null
  const target = parseHookUri(config.uri)

  let dispatcher: Dispatcher
  if (target.transport === 'pg-functions') {
    if (options.dbUrl === null) {
      throw new Error('GATEWAY_HOOK_URI (hook.uri): a pg-functions hook needs GATEWAY_DB_URL (db.url)')
    }
    dispatcher = createPgFunction({
      dbUrl: options.dbUrl,
      schema: target.schema,
      name: target.name,
      timeoutMs: config.timeoutMs,
      maxResponseBytes: config.maxResponseBytes,
    })
  } else {
    if (config.secrets.length === 0) {
      throw new Error('GATEWAY_HOOK_SECRETS (hook.secrets) is required for an HTTP hook: requests are signed')
    }
    const keys = config.secrets.map((secret, i) => parseWebhookSecret(secret, i + 1))
    dispatcher = createHttpEndpoint({
      url: target.url,
      keys,
      timeoutMs: config.timeoutMs,
      maxResponseBytes: config.maxResponseBytes,
      ...(options.retryBackoffMs === undefined ? {} : { retryBackoffMs: options.retryBackoffMs }),
    })
  }

  const calls = options.metrics?.hookCalls
  const counted = {
    ok: calls?.labels('ok'),
    rejected: calls?.labels('rejected'),
    invalid: calls?.labels('invalid'),
    error: calls?.labels('error'),
    timeout: calls?.labels('timeout'),
  }
  const transport = target.transport
  const slots = new WeakMap<VerifiedToken, Slot>()

  /** One log line per failed call: what went wrong, never a value from the input or the answer. */
  function fail(result: 'invalid' | 'error' | 'timeout', reason: string, started: number): never {
    counted[result]?.inc()
    const durationMs = Math.round(performance.now() - started)
    if (result === 'invalid') {
      logger?.warn({ code: 'GW302', transport, reason, durationMs }, 'access token hook broke the contract')
      throw new GatewayError('HookContractViolation', { reason })
    }
    logger?.warn({ code: 'GW303', transport, reason, durationMs }, 'access token hook failed')
    throw new GatewayError('HookUnavailable', {
      reason: result === 'timeout' ? `timeout: ${reason}` : reason,
    })
  }

  async function call(token: VerifiedToken, user: CurrentUser | null): Promise<Readonly<Claims>> {
    const started = performance.now()
    let outcome: HookOutcome
    try {
      outcome = judgeOutput(await dispatcher.call(hookInput(token, user)))
    } catch (err) {
      if (err instanceof HookCallFailed) return fail(err.result, err.reason, started)
      return fail('error', 'unexpected failure calling the hook', started)
    }
    switch (outcome.kind) {
      case 'claims':
        counted.ok?.inc()
        return Object.freeze(outcome.claims)
      case 'rejected':
        counted.rejected?.inc()
        // Supabase answers with the hook's own status and message; so does the gateway.
        throw new GatewayError('HookRejected', { status: outcome.status, message: outcome.message })
      case 'invalid':
        return fail('invalid', outcome.problems.join('; '), started)
    }
  }

  function start(token: VerifiedToken, user: CurrentUser | null): Promise<Readonly<Claims>> {
    const slot = new Slot(user)
    slots.set(token, slot)
    const pending = call(token, user).then(
      (claims) => {
        slot.value = claims
        slot.pending = null
        return claims
      },
      (err: unknown) => {
        if (err instanceof GatewayError && err.kind === 'HookRejected') {
          slot.refusal = err
          slot.pending = null
        } else if (slots.get(token) === slot) {
          // A failure is not an answer: the next request for this token calls the hook again.
          slots.delete(token)
        }
        throw err
      },
    )
    slot.pending = pending
    return pending
  }

  return {
    run(token, user) {
      const slot = slots.get(token)
      if (slot !== undefined && slot.user === user) {
        if (slot.value !== null) return slot.value
        if (slot.refusal !== null) throw slot.refusal
        if (slot.pending !== null) return slot.pending
      }
      return start(token, user)
    },
    async close() {
      await dispatcher.close()
    },
  }
}
