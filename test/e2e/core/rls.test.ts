// End to end, whole stack: reads under RLS, the role and claims PostgreSQL sees, API keys and minted-token reuse through the built gateway.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DEMO_USERS } from '../../support/database.js'
import {
  apiKey,
  bearer,
  type E2eStack,
  errorView,
  expectedError,
  inboundToken,
  send,
  startE2eStack,
  upstreamChoices,
  userClaims,
} from '../../support/e2e-stack.js'

const NOTES = '/notes?select=id,title&order=id'
const PUBLIC_NOTES = [
  { id: 1, title: 'Welcome' },
  { id: 5, title: 'Carol public' },
]
const ALICE_NOTES = [
  { id: 1, title: 'Welcome' },
  { id: 2, title: 'Alice private' },
  { id: 5, title: 'Carol public' },
]
const ALL_NOTES = [
  { id: 1, title: 'Welcome' },
  { id: 2, title: 'Alice private' },
  { id: 3, title: 'Bob private' },
  { id: 4, title: 'Carol private' },
  { id: 5, title: 'Carol public' },
]

for (const choice of upstreamChoices()) {
  describe.skipIf(choice.skipReason !== null)(`reads under RLS through the gateway (${choice.kind})`, () => {
    let stack: E2eStack
    // Bob's token is stale: it says `authenticated` and has no role in app_metadata; auth.users
    // says app_metadata.role = manager.
    const aliceClaims = userClaims('alice')
    const bobClaims = userClaims('bob')
    const alice = inboundToken(aliceClaims)
    const bob = inboundToken(bobClaims)

    beforeAll(async () => {
      stack = await startE2eStack({ upstream: choice.kind })
    })
    afterAll(async () => {
      await stack?.close()
    })

    async function rows(headers: Record<string, string>): Promise<unknown> {
      const reply = await send(stack.gateway.url + NOTES, { headers })
      expect(reply.status).toBe(200)
      expect(reply.headers['content-type']).toBe('application/json; charset=utf-8')
      return JSON.parse(reply.text)
    }

    async function whoami(headers: Record<string, string>): Promise<unknown> {
      const reply = await send(`${stack.gateway.url}/rpc/whoami`, { method: 'POST', headers })
      expect(reply.status).toBe(200)
      return JSON.parse(reply.text)
    }

    test('anonymous: public notes only, as anon, with no Authorization upstream', async () => {
      const before = stack.requests?.length ?? 0
      expect(await rows({})).toEqual(PUBLIC_NOTES)
      expect(await whoami({})).toEqual({ role: 'anon', uid: null, claims: { role: 'anon' } })
      if (stack.requests !== null) {
        expect(stack.requests.slice(before).map((r) => r.authorization)).toEqual([null, null])
      }
    })

    test('alice: her own notes and the public ones, as authenticated with her claims', async () => {
      expect(await rows(bearer(alice))).toEqual(ALICE_NOTES)
      expect(await whoami(bearer(alice))).toEqual({
        role: 'authenticated',
        uid: DEMO_USERS.alice.id,
        claims: { ...aliceClaims, role: 'authenticated' },
      })
    })

    test('bob: app_metadata.role from the database maps to manager, who sees every note', async () => {
      expect(await rows(bearer(bob))).toEqual(ALL_NOTES)
      expect(await whoami(bearer(bob))).toEqual({
        role: 'manager',
        uid: DEMO_USERS.bob.id,
        // The minted claims: the token's, with the current app_metadata and the mapped role.
        claims: {
          ...bobClaims,
          app_metadata: { provider: 'email', providers: ['email'], role: 'manager' },
          role: 'manager',
        },
      })
    })

    test('a Basic scheme is anonymous, as PostgREST reads it, and is not forwarded', async () => {
      const headers = { authorization: 'Basic dXNlcjpwdw==' }
      expect(await rows(headers)).toEqual(PUBLIC_NOTES)
      const reply = await send(`${stack.gateway.url}/rpc/request_context`, { method: 'POST', headers })
      expect(reply.status).toBe(200)
      const context = JSON.parse(reply.text) as { role: string; headers: Record<string, string> }
      expect(context.role).toBe('anon')
      expect(context.headers['authorization']).toBeUndefined()
    })

    test('an anon API key (no sub) goes through as anonymous: no Authorization upstream', async () => {
      const before = stack.requests?.length ?? 0
      const headers = { ...bearer(apiKey('anon')), apikey: apiKey('anon') }
      expect(await rows(headers)).toEqual(PUBLIC_NOTES)
      const reply = await send(`${stack.gateway.url}/rpc/request_context`, { method: 'POST', headers })
      expect(reply.status).toBe(200)
      const context = JSON.parse(reply.text) as { role: string; headers: Record<string, string> }
      expect(context.role).toBe('anon')
      expect(context.headers['authorization']).toBeUndefined()
      if (stack.requests !== null) {
        expect(stack.requests.slice(before).map((r) => r.authorization)).toEqual([null, null])
      }
    })

    test('a service_role API key is refused with 403 GW201 and nothing reaches the upstream', async () => {
      const before = stack.requests?.length ?? 0
      const reply = await send(stack.gateway.url + NOTES, { headers: bearer(apiKey('service_role')) })
      expect(errorView(reply)).toStrictEqual(
        expectedError(403, 'GW201', 'Role is not allowed', { origin: 'gateway' }),
      )
      if (stack.requests !== null) expect(stack.requests.length).toBe(before)
    })

    test('the same inbound token twice reaches the upstream as the same minted token, not the inbound one', async () => {
      const token = inboundToken(userClaims('alice', { jti: 'same-token-twice' }))
      const seen: string[] = []
      for (let i = 0; i < 2; i++) {
        const reply = await send(`${stack.gateway.url}/rpc/request_context`, {
          method: 'POST',
          headers: bearer(token),
        })
        expect(reply.status).toBe(200)
        const context = JSON.parse(reply.text) as { headers: Record<string, string> }
        seen.push(context.headers['authorization']!)
      }
      expect(seen[0]).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/)
      expect(seen[1]).toBe(seen[0])
      expect(seen[0]).not.toBe(`Bearer ${token}`)
      if (stack.requests !== null) {
        expect(stack.requests.slice(-2).map((r) => r.authorization)).toEqual([seen[0], seen[0]])
      }
    })
  })
}
