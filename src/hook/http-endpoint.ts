// Hook stage (HTTP): POST the input, signed per Standard Webhooks, with Supabase Auth's retry rule and limits.
import { randomUUID } from 'node:crypto'
import { Pool, request, type Dispatcher as UndiciDispatcher } from 'undici'
import { type Dispatcher, HookCallFailed, parseAnswer } from './dispatch.js'
import { signWebhook } from './webhook-signature.js'

export interface HttpEndpointOptions {
  readonly url: URL
  /** Key bytes of the `v1,whsec_...` secrets; one signature per key. */
  readonly keys: readonly Buffer[]
  /** Budget for the whole call, retries included (Supabase: one context deadline around all attempts). */
  readonly timeoutMs: number
  readonly maxResponseBytes: number
  /** Pause after a network error before the next attempt; default {@link defaultBackoffMs}. */
  readonly retryBackoffMs?: number
  /** Clock for `webhook-timestamp`, in ms (tests). */
  readonly now?: () => number
}

// supabase/auth internal/hooks/hookhttp: `defaultHTTPHookRetries = 3` attempts in all.
export const HTTP_HOOK_ATTEMPTS = 3
// Supabase pauses `httpHookBackoffDuration = 2 s` after a network error, inside a 5 s budget. The
// gateway calls the hook on a request's path with a smaller budget (2 s by default), so the pause is
// a quarter of the budget, at most Supabase's 2 s: room is left for the attempt after it.
const SUPABASE_BACKOFF_MS = 2000

export function defaultBackoffMs(timeoutMs: number): number {
  return Math.min(SUPABASE_BACKOFF_MS, Math.floor(timeoutMs / 4))
}

/** `application/json`, with or without parameters (hookhttp: `mime.ParseMediaType` == "application/json"). */
function isJson(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false
  const semicolon = contentType.indexOf(';')
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase()
  return type === 'application/json'
}

type ResponseBody = UndiciDispatcher.ResponseData['body']

/** Stops reading: undici then closes the connection; the abort it reports is expected, not a fault. */
function abandon(body: ResponseBody): void {
  body.on('error', noop)
  body.destroy()
}

const noop = () => {}

/** Frees the connection; a body that fails while being discarded changes nothing. */
async function discard(body: { dump(): Promise<void> }): Promise<void> {
  try {
    await body.dump()
  } catch {
    // the connection is closed instead of reused
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * An HTTP hook. supabase/auth internal/hooks/hookhttp `RunHTTPHook`:
 * - POST the JSON input with `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks);
 * - up to 3 attempts: after a network error (pause, then retry), or at once after a 429 or 503
 *   that carries `retry-after` (its value is not read); 429/503 without it, any other non-2xx: fail;
 * - 200/202/204 with `content-type: application/json`, body limited in size;
 * - one deadline around all attempts: reaching it is a timeout.
 * The `webhook-id` stays the same across retries (the spec: "the same on retries", so a receiver
 * can deduplicate); Supabase draws a new one per attempt. Timestamp and signature are per attempt.
 */
export function createHttpEndpoint(options: HttpEndpointOptions): Dispatcher {
  const { url, keys, timeoutMs, maxResponseBytes } = options
  const backoffMs = options.retryBackoffMs ?? defaultBackoffMs(timeoutMs)
  const now = options.now ?? Date.now
  const href = url.href
  const pool = new Pool(url.origin, { connections: 8, connectTimeout: timeoutMs, pipelining: 1 })

  async function readBody(body: ResponseBody, length: number): Promise<string> {
    if (length > maxResponseBytes) {
      abandon(body)
      throw new HookCallFailed('invalid', `the answer is larger than ${maxResponseBytes} bytes`)
    }
    const chunks: Buffer[] = []
    let total = 0
    for await (const chunk of body) {
      total += chunk.length
      // Stop reading at the limit: a hook must not make the gateway buffer an unbounded answer.
      if (total > maxResponseBytes) {
        abandon(body)
        throw new HookCallFailed('invalid', `the answer is larger than ${maxResponseBytes} bytes`)
      }
      chunks.push(chunk)
    }
    return Buffer.concat(chunks, total).toString('utf8')
  }

  async function call(input: string): Promise<unknown> {
    const started = now()
    // Supabase sends a UUID as the message id.
    const id = randomUUID()
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort()
    }, timeoutMs)
    const timeout = () =>
      new HookCallFailed('timeout', `no answer from the hook endpoint within ${timeoutMs} ms`)
    try {
      for (let attempt = 1; attempt <= HTTP_HOOK_ATTEMPTS; attempt++) {
        const timestamp = Math.floor(now() / 1000)
        let res: Awaited<ReturnType<typeof request>>
        try {
          res = await request(href, {
            dispatcher: pool,
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              accept: 'application/json',
              'webhook-id': id,
              'webhook-timestamp': String(timestamp),
              'webhook-signature': signWebhook(keys, id, timestamp, input),
            },
            body: input,
            signal: controller.signal,
            headersTimeout: timeoutMs,
            bodyTimeout: timeoutMs,
          })
        } catch (err) {
          if (timedOut) throw timeout()
          const code = (err as { code?: unknown }).code
          const label = typeof code === 'string' ? code : 'unknown'
          if (attempt === HTTP_HOOK_ATTEMPTS) {
            throw new HookCallFailed(
              'error',
              `hook endpoint unreachable after ${attempt} attempts (${label})`,
              err,
            )
          }
          // Supabase waits for the pause or the deadline, whichever comes first.
          const left = timeoutMs - (now() - started)
          if (left <= backoffMs) {
            await sleep(Math.max(0, left))
            throw timeout()
          }
          await sleep(backoffMs)
          if (timedOut) throw timeout()
          continue
        }

        const status = res.statusCode
        if (status === 200 || status === 202 || status === 204) {
          if (status === 204 && res.headers['content-type'] === undefined) {
            await discard(res.body)
            throw new HookCallFailed('invalid', 'the hook endpoint answered 204 without a body')
          }
          if (!isJson(res.headers['content-type'])) {
            await discard(res.body)
            throw new HookCallFailed('invalid', 'the hook endpoint did not answer application/json')
          }
          const declared = Number(res.headers['content-length'] ?? 0)
          let text: string
          try {
            text = await readBody(res.body, Number.isFinite(declared) ? declared : 0)
          } catch (err) {
            if (timedOut) throw timeout()
            if (err instanceof HookCallFailed) throw err
            throw new HookCallFailed('error', 'the hook endpoint broke off its answer', err)
          }
          return parseAnswer(text)
        }
        await discard(res.body)
        const retryAfter = res.headers['retry-after']
        // hookhttp: any non-empty retry-after ("truthy") allows the next attempt.
        if ((status === 429 || status === 503) && typeof retryAfter === 'string' && retryAfter !== '') {
          if (attempt < HTTP_HOOK_ATTEMPTS) continue
          throw new HookCallFailed('error', `the hook endpoint answered ${status} on every attempt`)
        }
        throw new HookCallFailed('error', `the hook endpoint answered ${status}`)
      }
      // Unreachable: the last attempt returns or throws.
      throw new HookCallFailed('error', 'no attempt left')
    } finally {
      clearTimeout(timer)
    }
  }

  return {
    call,
    async close() {
      await pool.close()
    },
  }
}
