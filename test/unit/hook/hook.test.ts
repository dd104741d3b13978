import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Claims, VerifiedToken } from '../../../src/auth/types.js'
import type { HookConfig } from '../../../src/config/types.js'
import { errorResponse, GatewayError } from '../../../src/errors/index.js'
import { createHook, type Hook, hookInput } from '../../../src/hook/index.js'
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js'
import type { CurrentUser } from '../../../src/role/map-role.js'

const SECRET_BYTES = [Buffer.alloc(32, 1), Buffer.alloc(24, 2)]
const SECRETS = SECRET_BYTES.map((bytes) => `v1,whsec_${bytes.toString('base64')}`)

const EMAIL = 'carol-private@example.com'
const SUB = '7d3f5e1a-0000-4000-8000-000000000001'

function tokenClaims(): Claims {
  return {
    aud: 'authenticated',
    exp: 2_000_000_000,
    iat: 1_700_000_000,
    sub: SUB,
    email: EMAIL,
    phone: '',
    app_metadata: { provider: 'email', plan: 'free' },
    user_metadata: { nickname: 'carol' },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: 1_700_000_000 }],
    session_id: '0b0e6d34-0000-4000-8000-000000000002',
    is_anonymous: false,
  }
}

function verified(claims: Claims = tokenClaims()): VerifiedToken {
  return {
    token: 'header.payload.signature',
    claims,
    exp: 2_000_000_000,
    nbf: null,
    iat: 1_700_000_000,
    sub: SUB,
    sessionId: '0b0e6d34-0000-4000-8000-000000000002',
    role: typeof claims['role'] === 'string' ? claims['role'] : null,
    kid: null,
    alg: 'HS256',
  }
}

function user(appMetadata: Record<string, unknown> = { provider: 'email', plan: 'pro' }): CurrentUser {
  return { appMetadata, role: 'staff' }
}

interface Received {
  readonly headers: IncomingMessage['headers']
  readonly body: string
}

type Handler = (req: IncomingMessage, res: ServerResponse, received: Received) => void

/** A hook endpoint on 127.0.0.1 that records each request and checks its Standard Webhooks signature. */
class Receiver {
  readonly server: Server
  readonly requests: Received[] = []
  /** One entry per request: whether every expected signature was present and correct. */
  readonly verdicts: boolean[] = []
  handler: Handler = (_req, res) => json(res, 200, { claims: tokenClaims() })

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
        this.requests.push(received)
        this.verdicts.push(verifySignatures(received))
        this.handler(req, res, received)
      })
    })
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`
  }
}

/** Standard Webhooks verification, written from the spec: every configured secret must have signed. */
function verifySignatures({ headers, body }: Received): boolean {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const header = headers['webhook-signature']
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof header !== 'string') return false
  if (!/^\d+$/.test(timestamp) || Math.abs(Number(timestamp) - Date.now() / 1000) > 300) return false
  const passed = header.split(' ').map((entry) => {
    const [version, signature] = entry.split(',')
    return version === 'v1' && signature !== undefined ? Buffer.from(signature, 'base64') : null
  })
  return SECRET_BYTES.every((key) => {
    const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest()
    return passed.some(
      (sig) => sig !== null && sig.length === expected.length && timingSafeEqual(sig, expected),
    )
  })
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    ...headers,
  })
  res.end(body)
}

const receiver = new Receiver()
const hooks: Hook[] = []
let logLines: string[] = []
let metrics: Metrics

beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve))
})

afterAll(async () => {
  receiver.server.closeAllConnections()
  await new Promise<void>((resolve) => receiver.server.close(() => resolve()))
})

afterEach(async () => {
  await Promise.all(hooks.splice(0).map((hook) => hook.close()))
  receiver.requests.length = 0
  receiver.verdicts.length = 0
  receiver.handler = (_req, res) => json(res, 200, { claims: tokenClaims() })
})

function httpHook(overrides: Partial<HookConfig> = {}, retryBackoffMs = 10): Hook {
  logLines = []
  metrics = createMetrics({ defaultMetrics: false })
  const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) })
  const hook = createHook({
    config: { uri: receiver.url, secrets: SECRETS, timeoutMs: 2000, maxResponseBytes: 65536, ...overrides },
    dbUrl: null,
    metrics,
    logger,
    retryBackoffMs,
  })
  if (hook === null) throw new Error('expected a hook')
  hooks.push(hook)
  return hook
}

async function calls(): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const value of (await metrics.hookCalls.get()).values) {
    if (value.value > 0) out[String(value.labels['result'])] = value.value
  }
  return out
}

async function failure(run: () => unknown): Promise<GatewayError> {
  try {
    await run()
  } catch (err) {
    if (err instanceof GatewayError) return err
    throw err
  }
  throw new Error('expected a GatewayError')
}

describe('createHook: configuration', () => {
  const base: HookConfig = { uri: null, secrets: [], timeoutMs: 2000, maxResponseBytes: 65536 }

  it('is null without a hook URI', () => {
    expect(createHook({ config: base, dbUrl: null })).toBeNull()
  })

  it('refuses, at start, what cannot work', () => {
    expect(() =>
      createHook({ config: { ...base, uri: 'pg-functions://postgres/public/hook' }, dbUrl: null }),
    ).toThrow('GATEWAY_HOOK_URI (hook.uri): a pg-functions hook needs GATEWAY_DB_URL (db.url)')
    expect(() =>
      createHook({ config: { ...base, uri: 'https://hooks.example.com/token' }, dbUrl: null }),
    ).toThrow('GATEWAY_HOOK_SECRETS (hook.secrets) is required for an HTTP hook: requests are signed')
    for (const uri of [
      'http://hooks.example.com/token',
      'pg-functions://postgres/public',
      'pg-functions://postgres/public/hook"; drop table x',
      'pg-functions://other/public/hook',
      'ftp://localhost/hook',
    ]) {
      expect(() => createHook({ config: { ...base, uri, secrets: SECRETS }, dbUrl: 'postgres://x' })).toThrow(
        'GATEWAY_HOOK_URI (hook.uri) must be pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost',
      )
    }
  })
})

describe('hookInput', () => {
  it('sends the token claims with the current app_metadata and role, as a token refresh', () => {
    const input = JSON.parse(hookInput(verified(), user()))
    expect(input).toEqual({
      user_id: SUB,
      claims: { ...tokenClaims(), app_metadata: { provider: 'email', plan: 'pro' }, role: 'staff' },
      authentication_method: 'token_refresh',
    })
  })

  it('keeps the token role when the user record has none, and the token claims without a record', () => {
    const withoutRole = JSON.parse(hookInput(verified(), { appMetadata: { plan: 'pro' }, role: null }))
    expect(withoutRole.claims.role).toBe('authenticated')
    expect(withoutRole.claims.app_metadata).toEqual({ plan: 'pro' })
    expect(JSON.parse(hookInput(verified(), null)).claims).toEqual(tokenClaims())
  })
})

describe('HTTP hook', () => {
  it('posts the input signed with every secret, and its claims replace the token claims', async () => {
    const hook = httpHook()
    const out = { ...tokenClaims(), app_metadata: { plan: 'pro' }, user_role: 'admin' }
    receiver.handler = (_req, res) => json(res, 200, { claims: out })
    const token = verified()
    const current = user()
    expect(await hook.run(token, current)).toEqual(out)
    expect(receiver.requests).toHaveLength(1)
    expect(receiver.verdicts).toEqual([true])
    const request = receiver.requests[0]!
    expect(request.headers['content-type']).toBe('application/json')
    expect(request.headers['webhook-id']).toMatch(/^[0-9a-f-]{36}$/)
    expect(String(request.headers['webhook-signature']).split(' ')).toHaveLength(2)
    expect(request.body).toBe(hookInput(token, current))
    expect(await calls()).toEqual({ ok: 1 })
  })

  it('fails the signature check of a receiver holding another secret (the check can fail)', async () => {
    const hook = createHook({
      config: {
        uri: receiver.url,
        secrets: [`v1,whsec_${Buffer.alloc(32, 9).toString('base64')}`, SECRETS[1]!],
        timeoutMs: 2000,
        maxResponseBytes: 65536,
      },
      dbUrl: null,
    })!
    hooks.push(hook)
    await hook.run(verified(), user())
    expect(receiver.verdicts).toEqual([false])
  })

  it('runs once per token and user record; a held result comes back synchronously', async () => {
    const hook = httpHook()
    const token = verified()
    const current = user()
    const first = hook.run(token, current)
    expect(first).toBeInstanceOf(Promise)
    const claims = await first
    const again = hook.run(token, current)
    expect(again).not.toBeInstanceOf(Promise)
    expect(again).toBe(claims)
    expect(receiver.requests).toHaveLength(1)

    // The claims stage hands out a new record when the user changes: the hook runs again.
    const changed = user({ plan: 'enterprise' })
    await hook.run(token, changed)
    expect(receiver.requests).toHaveLength(2)
    expect(JSON.parse(receiver.requests[1]!.body).claims.app_metadata).toEqual({ plan: 'enterprise' })
    // Another token of the same user is another entry.
    await hook.run(verified(), changed)
    expect(receiver.requests).toHaveLength(3)
  })

  it('shares one call between concurrent first requests', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => setTimeout(() => json(res, 200, { claims: tokenClaims() }), 50)
    const token = verified()
    const current = user()
    const results = await Promise.all([
      hook.run(token, current),
      hook.run(token, current),
      hook.run(token, current),
    ])
    expect(receiver.requests).toHaveLength(1)
    expect(results[1]).toBe(results[0])
    expect(results[2]).toBe(results[0])
  })

  it("answers a refusal with the hook's status and message, and holds it for the claims version", async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) =>
      json(res, 200, { error: { http_code: 403, message: 'SSO users are not allowed' } })
    const token = verified()
    const current = user()
    const err = await failure(() => hook.run(token, current))
    expect(err.kind).toBe('HookRejected')
    const response = errorResponse(err)
    expect(response.status).toBe(403)
    expect(response.body).toBe(
      '{"code":"GW301","details":null,"hint":null,"message":"SSO users are not allowed"}',
    )
    // Held: thrown synchronously, no second call.
    expect(() => hook.run(token, current)).toThrow(err)
    expect(receiver.requests).toHaveLength(1)
    expect(await calls()).toEqual({ rejected: 1 })
  })

  it('refuses output without a required claim: GW302, one log line naming the claim, no value', async () => {
    const hook = httpHook()
    const claims = tokenClaims()
    delete claims['email']
    claims['exp'] = 'later'
    receiver.handler = (_req, res) => json(res, 200, { claims })
    const err = await failure(() => hook.run(verified(), user()))
    const response = errorResponse(err)
    expect(response.status).toBe(500)
    expect(response.body).toBe(
      '{"code":"GW302","details":null,"hint":null,"message":"Access token hook returned an invalid response"}',
    )
    expect(logLines).toHaveLength(1)
    const line = JSON.parse(logLines[0]!)
    expect(line.msg).toBe('access token hook broke the contract')
    expect(line.code).toBe('GW302')
    expect(line.reason).toBe("claim 'email': required; claim 'exp': must be an integer")
    for (const value of [EMAIL, SUB, 'later', 'carol', 'pro']) expect(logLines[0]).not.toContain(value)
    expect(await calls()).toEqual({ invalid: 1 })
  })

  it('does not hold a contract violation: the next request calls the hook again', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => json(res, 200, { nothing: true })
    const token = verified()
    const current = user()
    expect((await failure(() => hook.run(token, current))).kind).toBe('HookContractViolation')
    receiver.handler = (_req, res) => json(res, 200, { claims: tokenClaims() })
    expect(await hook.run(token, current)).toEqual(tokenClaims())
    expect(receiver.requests).toHaveLength(2)
  })

  it('times out within the budget: GW303', async () => {
    const hook = httpHook({ timeoutMs: 200 })
    receiver.handler = () => {} // never answers
    const started = performance.now()
    const err = await failure(() => hook.run(verified(), user()))
    const elapsed = performance.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(190)
    expect(elapsed).toBeLessThan(1000)
    expect(errorResponse(err).body).toBe(
      '{"code":"GW303","details":null,"hint":null,"message":"Access token hook failed"}',
    )
    expect(errorResponse(err).status).toBe(500)
    expect(err.reason).toBe('timeout: no answer from the hook endpoint within 200 ms')
    expect(await calls()).toEqual({ timeout: 1 })
  })

  it('retries at once after a 429 with retry-after, with the same webhook-id and a fresh signature', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => {
      if (receiver.requests.length === 1) json(res, 429, { message: 'slow down' }, { 'retry-after': '1' })
      else json(res, 200, { claims: tokenClaims() })
    }
    expect(await hook.run(verified(), user())).toEqual(tokenClaims())
    expect(receiver.requests).toHaveLength(2)
    expect(receiver.verdicts).toEqual([true, true])
    expect(receiver.requests[1]!.headers['webhook-id']).toBe(receiver.requests[0]!.headers['webhook-id'])
    expect(await calls()).toEqual({ ok: 1 })
  })

  it('gives up after 3 attempts of 503 with retry-after, and at once on 429 without it', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => json(res, 503, {}, { 'retry-after': '0' })
    const err = await failure(() => hook.run(verified(), user()))
    expect(err.kind).toBe('HookUnavailable')
    expect(err.reason).toBe('the hook endpoint answered 503 on every attempt')
    expect(receiver.requests).toHaveLength(3)

    receiver.requests.length = 0
    receiver.handler = (_req, res) => json(res, 429, {})
    const once = await failure(() => hook.run(verified(), user()))
    expect(once.reason).toBe('the hook endpoint answered 429')
    expect(receiver.requests).toHaveLength(1)
    expect(await calls()).toEqual({ error: 2 })
  })

  it('retries after a network error', async () => {
    const hook = httpHook()
    receiver.handler = (req, res) => {
      if (receiver.requests.length === 1) req.socket.destroy()
      else json(res, 200, { claims: tokenClaims() })
    }
    expect(await hook.run(verified(), user())).toEqual(tokenClaims())
    expect(receiver.requests).toHaveLength(2)
  })

  it('fails on other statuses without retrying', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => json(res, 401, { message: 'who are you' })
    const err = await failure(() => hook.run(verified(), user()))
    expect(err.kind).toBe('HookUnavailable')
    expect(err.reason).toBe('the hook endpoint answered 401')
    expect(receiver.requests).toHaveLength(1)
  })

  it('stops reading an answer larger than maxResponseBytes, declared or streamed', async () => {
    const hook = httpHook({ maxResponseBytes: 1000 })
    const big = { claims: { ...tokenClaims(), padding: 'x'.repeat(5000) } }
    receiver.handler = (_req, res) => json(res, 200, big)
    const declared = await failure(() => hook.run(verified(), user()))
    expect(declared.kind).toBe('HookContractViolation')
    expect(declared.reason).toBe('the answer is larger than 1000 bytes')

    receiver.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }) // chunked: no length up front
      const text = JSON.stringify(big)
      for (let i = 0; i < text.length; i += 500) res.write(text.slice(i, i + 500))
      res.end()
    }
    const streamed = await failure(() => hook.run(verified(), user()))
    expect(streamed.reason).toBe('the answer is larger than 1000 bytes')
    expect(await calls()).toEqual({ invalid: 2 })
  })

  it('refuses an answer that is not application/json, or not JSON', async () => {
    const hook = httpHook()
    receiver.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(JSON.stringify({ claims: tokenClaims() }))
    }
    expect((await failure(() => hook.run(verified(), user()))).reason).toBe(
      'the hook endpoint did not answer application/json',
    )
    receiver.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' })
      res.end('{"claims":')
    }
    expect((await failure(() => hook.run(verified(), user()))).reason).toBe('the answer is not JSON')
  })
})
