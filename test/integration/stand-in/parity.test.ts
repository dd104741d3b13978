// The stand-in against a real PostgREST: the same requests must get the same status and body.
import { CompactSign } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import {
  type PostgrestProcess,
  postgrestBinaryOrWarn,
  startPostgrest,
} from '../../support/postgrest-binary.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'

const SECRET = 'stand-in-parity-secret-with-at-least-32-chars'
const bin = postgrestBinaryOrWarn()

async function hs256(claims: object): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(SECRET))
}

describe.skipIf(bin === null)('stand-in parity with a real PostgREST', () => {
  let db: TestDatabase
  let standIn: StandIn
  let postgrest: PostgrestProcess

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    const options = { dbUrl: db.authenticatorUrl, jwtSecret: SECRET, anonRole: 'anon' }
    standIn = await startPostgrestStandIn(options)
    postgrest = await startPostgrest({ ...options, bin: bin! })
  })
  afterAll(async () => {
    await standIn?.close()
    await postgrest?.close()
    await db?.drop()
  })

  const now = () => Math.floor(Date.now() / 1000)
  const cases: [string, () => Promise<Record<string, string>>][] = [
    ['anonymous', async () => ({})],
    [
      'valid token',
      async () => ({
        authorization: `Bearer ${await hs256({ sub: DEMO_USERS.alice.id, role: 'authenticated', exp: now() + 60 })}`,
      }),
    ],
    [
      'expired by 31 s',
      async () => ({ authorization: `Bearer ${await hs256({ role: 'authenticated', exp: now() - 31 })}` }),
    ],
    ['empty bearer', async () => ({ authorization: 'Bearer ' })],
    ['two parts', async () => ({ authorization: 'Bearer a.b' })],
    [
      'unknown role',
      async () => ({ authorization: `Bearer ${await hs256({ role: 'nobody_here', exp: now() + 60 })}` }),
    ],
    [
      'exp not a number',
      async () => ({ authorization: `Bearer ${await hs256({ role: 'anon', exp: 'soon' })}` }),
    ],
    ['basic scheme', async () => ({ authorization: 'Basic dXNlcjpwdw==' })],
  ]

  for (const [name, headers] of cases) {
    test(`same answer: ${name}`, async () => {
      const h = await headers()
      const path = '/notes?select=id,title&order=id'
      const [a, b] = await Promise.all([
        fetch(standIn.url + path, { headers: h }),
        fetch(postgrest.url + path, { headers: h }),
      ])
      expect({ status: a.status, body: await a.text(), auth: a.headers.get('www-authenticate') }).toEqual({
        status: b.status,
        body: await b.text(),
        auth: b.headers.get('www-authenticate'),
      })
    })
  }
})
