// End to end, whole stack: PostgREST's token errors, anonymous denial, missing keys and role refusal answered by the built gateway, byte for byte.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DEMO_USERS } from '../../support/database.js'
import {
  bearer,
  type E2eStack,
  errorView,
  expectedError,
  gatewayEnv,
  inboundToken,
  invalidToken,
  send,
  startE2eStack,
  upstreamChoices,
  userClaims,
} from '../../support/e2e-stack.js'
import { type GatewayProcess, startGateway } from '../../support/gateway-process.js'
import { signHs } from '../../support/tokens.js'

const NOTES = '/notes?select=id&order=id'
// Carol's current app_metadata names a role that exists in PostgreSQL but is not in the allow-list.
const CAROL_IS_STAFF = `update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"staff"}'
  where id = '${DEMO_USERS.carol.id}'`

for (const choice of upstreamChoices()) {
  describe.skipIf(choice.skipReason !== null)(`token errors through the gateway (${choice.kind})`, () => {
    let stack: E2eStack
    /** The same upstream behind a gateway with anonymous access denied and no inbound key. */
    let strict: GatewayProcess
    const now = () => Math.floor(Date.now() / 1000)

    beforeAll(async () => {
      stack = await startE2eStack({ upstream: choice.kind, setupSql: CAROL_IS_STAFF })
      const env = gatewayEnv(stack.upstream.url, null)
      delete env['GATEWAY_JWT_SECRET']
      strict = await startGateway({ env: { ...env, GATEWAY_ANONYMOUS: 'deny' } })
    })
    afterAll(async () => {
      await strict?.stop()
      await stack?.close()
    })

    /** Sends to the gateway and checks that the upstream saw nothing of it (stand-in log). */
    async function refused(url: string, headers: Record<string, string>, method: 'GET' | 'OPTIONS' = 'GET') {
      const before = stack.requests?.length ?? 0
      const reply = await send(url, { method, headers })
      if (stack.requests !== null) expect(stack.requests.length).toBe(before)
      return errorView(reply)
    }

    test('Bearer with an empty token: 401 PGRST301', async () => {
      expect(await refused(stack.gateway.url + NOTES, { authorization: 'Bearer ' })).toStrictEqual(
        expectedError(401, 'PGRST301', 'Empty JWT is sent in Authorization header', {
          challenge: invalidToken('Empty JWT is sent in Authorization header'),
        }),
      )
    })

    test('a token of 2 parts: 401 PGRST301 naming the count', async () => {
      expect(await refused(stack.gateway.url + NOTES, bearer('eyJhbGciOiJIUzI1NiJ9.e30'))).toStrictEqual(
        expectedError(401, 'PGRST301', 'Expected 3 parts in JWT; got 2', {
          challenge: invalidToken('Expected 3 parts in JWT; got 2'),
        }),
      )
    })

    test('a bad signature: 401 PGRST301 with the details PostgREST gives', async () => {
      const forged = signHs(userClaims('alice'), 'some-other-secret-that-is-long-enough-32+')
      expect(await refused(stack.gateway.url + NOTES, bearer(forged))).toStrictEqual(
        expectedError(401, 'PGRST301', 'No suitable key or wrong key type', {
          details: 'None of the keys was able to decode the JWT',
          challenge: invalidToken('No suitable key or wrong key type'),
        }),
      )
    })

    test('expired 31 s ago: 401 PGRST303 (30 s skew); 25 s ago still passes', async () => {
      const expired = inboundToken(userClaims('alice', { exp: now() - 31, iat: now() - 3600 }))
      expect(await refused(stack.gateway.url + NOTES, bearer(expired))).toStrictEqual(
        expectedError(401, 'PGRST303', 'JWT expired', { challenge: invalidToken('JWT expired') }),
      )
      const withinSkew = inboundToken(userClaims('alice', { exp: now() - 25, iat: now() - 3600 }))
      const reply = await send(stack.gateway.url + NOTES, { headers: bearer(withinSkew) })
      expect(reply.status).toBe(200)
      expect(JSON.parse(reply.text)).toEqual([{ id: 1 }, { id: 2 }, { id: 5 }])
    })

    test('a role outside the allow-list: 403 GW201 and the upstream sees nothing', async () => {
      const carol = inboundToken(userClaims('carol'))
      expect(await refused(stack.gateway.url + NOTES, bearer(carol))).toStrictEqual(
        expectedError(403, 'GW201', 'Role is not allowed', { origin: 'gateway' }),
      )
    })

    test('anonymous denied: 401 PGRST302 with a bare Bearer challenge, also for a Basic scheme', async () => {
      const expected = expectedError(401, 'PGRST302', 'Anonymous access is disabled', { challenge: 'Bearer' })
      expect(await refused(strict.url + NOTES, {})).toStrictEqual(expected)
      expect(await refused(strict.url + NOTES, { authorization: 'Basic dXNlcjpwdw==' })).toStrictEqual(
        expected,
      )
      // An OPTIONS request that is not a CORS preflight (no Access-Control-Request-Method) needs a token.
      expect(await refused(strict.url + NOTES, { origin: 'https://app.example' }, 'OPTIONS')).toStrictEqual(
        expected,
      )
    })

    test('a token with no inbound key configured: 500 PGRST300, an empty Bearer too (v13+)', async () => {
      const missing = expectedError(500, 'PGRST300', 'Server lacks JWT secret')
      expect(await refused(strict.url + NOTES, bearer(inboundToken(userClaims('alice'))))).toStrictEqual(
        missing,
      )
      expect(await refused(strict.url + NOTES, { authorization: 'Bearer ' })).toStrictEqual(missing)
      expect(await refused(strict.url + NOTES, { authorization: 'bearer' })).toStrictEqual(missing)
    })

    test('a CORS preflight needs no token, even with anonymous access denied', async () => {
      const before = stack.requests?.length ?? 0
      // The stand-in has no CORS; its echo endpoint answers any method.
      const path = choice.kind === 'stand-in' ? '/__standin/echo' : '/notes'
      const reply = await send(strict.url + path, {
        method: 'OPTIONS',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
      })
      expect(reply.status).toBe(200)
      if (stack.requests !== null) {
        expect(stack.requests.length).toBe(before + 1)
        expect(stack.requests[before]).toMatchObject({
          method: 'OPTIONS',
          path: '/__standin/echo',
          authorization: null,
        })
        expect(stack.requests[before]!.headers['access-control-request-method']).toEqual(['POST'])
      } else {
        expect(reply.headers['access-control-allow-origin']).toBeDefined()
      }
    })
  })
}
