// Tests of the PostgREST stand-in's REST subset and test endpoints, against real PostgreSQL under RLS.
import { createHash } from 'node:crypto'
import { request } from 'node:http'
import { CompactSign } from 'jose'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createTestDatabase, DEMO_USERS, type TestDatabase } from '../../support/database.js'
import { type StandIn, startPostgrestStandIn } from '../../support/postgrest-stand-in.js'
import { adminUrl } from '../../support/shared-postgres.js'

const SECRET = 'stand-in-test-secret-with-at-least-32-chars'

async function token(claims: object): Promise<string> {
  return await new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(SECRET))
}

describe('PostgREST stand-in: REST subset', () => {
  let db: TestDatabase
  let standIn: StandIn
  let aliceAuth: string
  let bobAuth: string

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl(), { schema: 'demo' })
    standIn = await startPostgrestStandIn({ dbUrl: db.authenticatorUrl, jwtSecret: SECRET, anonRole: 'anon' })
    const exp = Math.floor(Date.now() / 1000) + 3600
    aliceAuth = `Bearer ${await token({ sub: DEMO_USERS.alice.id, role: 'authenticated', exp })}`
    bobAuth = `Bearer ${await token({ sub: DEMO_USERS.bob.id, role: 'manager', exp })}`
  })
  afterAll(async () => {
    await standIn?.close()
    await db?.drop()
  })

  test('GET with select, filters and order: body as PostgREST renders it (json_agg)', async () => {
    const res = await fetch(`${standIn.url}/notes?select=id,title&is_public=eq.false&order=id.desc`, {
      headers: { authorization: bobAuth },
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-range')).toBe('0-2/*')
    expect(await res.text()).toBe(
      '[{"id":4,"title":"Carol private"}, \n {"id":3,"title":"Bob private"}, \n {"id":2,"title":"Alice private"}]',
    )
  })

  test('in., is. and not. filters; values are parameters, not SQL', async () => {
    const ids = async (query: string) =>
      (
        (await (
          await fetch(`${standIn.url}/notes?select=id&order=id&${query}`, {
            headers: { authorization: bobAuth },
          })
        ).json()) as {
          id: number
        }[]
      ).map((row) => row.id)
    expect(await ids('id=in.(1,3,4)')).toEqual([1, 3, 4])
    expect(await ids('id=not.in.(1,3,4)')).toEqual([2, 5])
    expect(await ids('is_public=is.true')).toEqual([1, 5])
    expect(await ids('is_public=eq.true')).toEqual([1, 5])
    expect(await ids('id=gte.4')).toEqual([4, 5])
    expect(await ids(`title=eq.${encodeURIComponent("x' or '1'='1")}`)).toEqual([])
    expect(await ids('title=ilike.*private')).toEqual([2, 3, 4])
  })

  test('Range header: 206 with Content-Range a-b/total under count=exact, 200 with /* without', async () => {
    const exact = await fetch(`${standIn.url}/notes?select=id&order=id`, {
      headers: { authorization: bobAuth, range: '1-2', prefer: 'count=exact' },
    })
    expect(exact.status).toBe(206)
    expect(exact.headers.get('content-range')).toBe('1-2/5')
    expect(exact.headers.get('preference-applied')).toBe('count=exact')
    expect(await exact.json()).toEqual([{ id: 2 }, { id: 3 }])

    const plain = await fetch(`${standIn.url}/notes?select=id&order=id`, {
      headers: { authorization: bobAuth, range: '1-2' },
    })
    expect(plain.status).toBe(200)
    expect(plain.headers.get('content-range')).toBe('1-2/*')
    expect(plain.headers.get('preference-applied')).toBeNull()

    const all = await fetch(`${standIn.url}/notes?select=id&limit=10`, { headers: { prefer: 'count=exact' } })
    expect(all.status).toBe(200)
    expect(all.headers.get('content-range')).toBe('0-1/2')

    const beyond = await fetch(`${standIn.url}/notes?select=id&offset=7`, {
      headers: { prefer: 'count=exact' },
    })
    expect(beyond.status).toBe(416)
    expect(await beyond.text()).toBe(
      '{"code":"PGRST103","details":"An offset of 7 was requested, but there are only 2 rows.","hint":null,"message":"Requested range not satisfiable"}',
    )
  })

  test('POST return=representation: 201 with the rows; several Prefer headers are merged', async () => {
    const headers = new Headers({ authorization: aliceAuth, 'content-type': 'application/json' })
    headers.append('prefer', 'return=representation')
    headers.append('prefer', 'count=exact')
    const res = await fetch(`${standIn.url}/notes?select=title,user_id,is_public`, {
      method: 'POST',
      headers,
      body: JSON.stringify([{ title: 'from test', is_public: false }]),
    })
    expect(res.status).toBe(201)
    expect(res.headers.get('preference-applied')).toBe('return=representation')
    expect(await res.json()).toEqual([{ title: 'from test', user_id: DEMO_USERS.alice.id, is_public: false }])
  })

  test('POST return=minimal: 201 without a body; RLS refuses rows for another user (403 42501)', async () => {
    const minimal = await fetch(`${standIn.url}/notes`, {
      method: 'POST',
      headers: { authorization: aliceAuth, prefer: 'return=minimal', 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'minimal' }),
    })
    expect(minimal.status).toBe(201)
    expect(await minimal.text()).toBe('')
    const foreign = await fetch(`${standIn.url}/notes`, {
      method: 'POST',
      headers: { authorization: aliceAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'not mine', user_id: DEMO_USERS.bob.id }),
    })
    expect(foreign.status).toBe(403)
    expect(await foreign.text()).toBe(
      '{"code":"42501","details":null,"hint":null,"message":"new row violates row-level security policy for table \\"notes\\""}',
    )
  })

  test('unknown table: 404 PGRST205', async () => {
    const res = await fetch(`${standIn.url}/nothing_here`)
    expect(res.status).toBe(404)
    expect(await res.text()).toBe(
      '{"code":"PGRST205","details":null,"hint":null,"message":"Could not find the table \'public.nothing_here\' in the schema cache"}',
    )
  })

  test('request.method, request.path, request.headers (cookie excluded) and request.cookies', async () => {
    const res = await fetch(`${standIn.url}/rpc/request_context`, {
      method: 'POST',
      headers: { authorization: aliceAuth, cookie: 'a=1; b=two', 'x-trace': 't-1' },
    })
    const context = (await res.json()) as Record<string, unknown>
    expect(context['method']).toBe('POST')
    expect(context['path']).toBe('/rpc/request_context')
    expect(context['cookies']).toEqual({ a: '1', b: 'two' })
    const headers = context['headers'] as Record<string, string>
    expect(headers['authorization']).toBe(aliceAuth)
    expect(headers['x-trace']).toBe('t-1')
    expect(headers['cookie']).toBeUndefined()
  })

  test('echo streams a large body: length and sha256 of what arrived, and the auth verdict', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 7)
    const chunks = 32
    const expected = createHash('sha256')
    for (let i = 0; i < chunks; i++) expected.update(chunk)
    const result = await new Promise<string>((resolve, reject) => {
      const req = request(
        `${standIn.url}/__standin/echo?x=1`,
        { method: 'PUT', headers: { authorization: aliceAuth } },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (data: string) => {
            text += data
          })
          res.on('end', () => resolve(text))
        },
      )
      req.on('error', reject)
      let sent = 0
      const write = (): void => {
        while (sent < chunks) {
          sent++
          if (!req.write(chunk)) {
            req.once('drain', write)
            return
          }
        }
        req.end()
      }
      write()
    })
    const echo = JSON.parse(result) as Record<string, unknown>
    expect(echo['bodyLength']).toBe(chunk.length * chunks)
    expect(echo['bodySha256']).toBe(expected.digest('hex'))
    expect(echo['method']).toBe('PUT')
    expect(echo['url']).toBe('/__standin/echo?x=1')
    expect(echo['auth']).toMatchObject({ role: 'authenticated', claims: { sub: DEMO_USERS.alice.id } })
  })

  test('download streams exactly N bytes; status sends custom status and repeated headers', async () => {
    const res = await fetch(`${standIn.url}/__standin/download?bytes=200000`)
    expect(res.status).toBe(200)
    expect((await res.arrayBuffer()).byteLength).toBe(200000)
    const custom = await fetch(
      `${standIn.url}/__standin/status?code=419&header=set-cookie:a=1&header=set-cookie:b=2`,
    )
    expect(custom.status).toBe(419)
    expect(custom.headers.getSetCookie()).toEqual(['a=1', 'b=2'])
  })
})
