// End to end, whole stack: Range, Content-Range and Prefer pass both ways through the built gateway untouched.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { DEMO_USERS } from '../../support/database.js'
import {
  bearer,
  type E2eStack,
  inboundToken,
  send,
  startE2eStack,
  upstreamChoices,
  userClaims,
} from '../../support/e2e-stack.js'

for (const choice of upstreamChoices()) {
  describe.skipIf(choice.skipReason !== null)(`Range and Prefer through the gateway (${choice.kind})`, () => {
    let stack: E2eStack
    const bob = inboundToken(userClaims('bob'))
    const alice = inboundToken(userClaims('alice'))

    beforeAll(async () => {
      stack = await startE2eStack({ upstream: choice.kind })
    })
    afterAll(async () => {
      await stack?.close()
    })

    test('Range with count=exact: 206 and Content-Range with the total', async () => {
      const reply = await send(`${stack.gateway.url}/notes?select=id&order=id`, {
        headers: { ...bearer(bob), range: '1-2', prefer: 'count=exact' },
      })
      expect(reply.status).toBe(206)
      expect(reply.headers['content-range']).toBe('1-2/5')
      expect(reply.headers['preference-applied']).toBe('count=exact')
      expect(JSON.parse(reply.text)).toEqual([{ id: 2 }, { id: 3 }])
    })

    test('Range without a count: 200 and an open total', async () => {
      const reply = await send(`${stack.gateway.url}/notes?select=id&order=id`, {
        headers: { ...bearer(bob), range: '0-1' },
      })
      expect(reply.status).toBe(200)
      expect(reply.headers['content-range']).toBe('0-1/*')
      expect(JSON.parse(reply.text)).toEqual([{ id: 1 }, { id: 2 }])
    })

    test('count=exact counts only the rows RLS lets the minted role see', async () => {
      const reply = await send(`${stack.gateway.url}/notes?select=id&order=id&limit=1`, {
        headers: { ...bearer(alice), prefer: 'count=exact' },
      })
      expect(reply.status).toBe(206)
      expect(reply.headers['content-range']).toBe('0-0/3')
      expect(JSON.parse(reply.text)).toEqual([{ id: 1 }])
    })

    test('Prefer: return=representation: 201 with the inserted row, owned by the token subject', async () => {
      const reply = await send(`${stack.gateway.url}/notes?select=id,user_id,title,is_public`, {
        method: 'POST',
        headers: { ...bearer(alice), 'content-type': 'application/json', prefer: 'return=representation' },
        body: JSON.stringify({ title: 'Written through the gateway' }),
      })
      expect(reply.status).toBe(201)
      expect(reply.headers['preference-applied']).toBe('return=representation')
      expect(reply.headers['content-range']).toBe('*/*')
      expect(JSON.parse(reply.text)).toEqual([
        { id: 6, user_id: DEMO_USERS.alice.id, title: 'Written through the gateway', is_public: false },
      ])
    })

    test('several Prefer headers arrive upstream as separate headers and all apply', async () => {
      const before = stack.requests?.length ?? 0
      const reply = await send(`${stack.gateway.url}/notes?select=id&order=id`, {
        headers: { range: '0-0', prefer: ['handling=lenient', 'count=exact'] },
      })
      // count=exact came in the second header: the total proves PostgREST read it.
      expect(reply.status).toBe(206)
      expect(reply.headers['content-range']).toBe('0-0/2')
      expect(JSON.parse(reply.text)).toEqual([{ id: 1 }])
      if (stack.requests !== null) {
        expect(stack.requests.length).toBe(before + 1)
        expect(stack.requests[before]!.headers['prefer']).toEqual(['handling=lenient', 'count=exact'])
        expect(stack.requests[before]!.headers['range']).toEqual(['0-0'])
      }
    })
  })
}
