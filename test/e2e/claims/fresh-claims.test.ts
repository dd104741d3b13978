// End to end: fresh claims through the gateway process: set_claim, role changes, revocation, coalescing, replicas.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { adminUrl } from '../../support/shared-postgres.js'
import {
  call,
  errorBody,
  eventually,
  metric,
  requestContext,
  type Stack,
  signUp,
  startStack,
} from './stack.js'

// A policy that decides by a custom claim, as supabase-custom-claims users write them.
const SETUP = `
create table public.staff_board (id int primary key, title text not null);
alter table public.staff_board enable row level security;
grant select on public.staff_board to authenticated, staff, manager;
create policy staff_board_read on public.staff_board for select
  using ((select auth.jwt() -> 'app_metadata' ->> 'userrole') = 'STAFF');
insert into public.staff_board values (1, 'Rota');
`

const LOOKUPS = 'gateway_claims_lookups_total'

let stack: Stack

beforeAll(async () => {
  stack = await startStack({ adminUrl: adminUrl(), setupSql: SETUP })
})

afterAll(async () => {
  await stack?.close()
})

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

describe('fresh claims through the gateway', () => {
  test("set_claim(uid, 'userrole', '\"STAFF\"'): the same old token sees it at once, and RLS follows", async () => {
    const { gateway, sql } = stack
    const user = await signUp(stack)
    const before = await requestContext(gateway, user.token)
    expect(before.status).toBe(200)
    expect(before.claims?.['app_metadata']).toEqual({ provider: 'email', providers: ['email'] })
    expect((await call(gateway, '/staff_board', user.token)).json).toEqual([])
    const lookups = await metric(gateway, LOOKUPS)

    const latencies: number[] = []
    const tries: number[] = []
    for (const value of ['STAFF', 'VISITOR', 'STAFF']) {
      const rows =
        await sql`select public.set_claim(${user.id}::uuid, 'userrole', ${sql.json(value)}) as result`
      expect(rows).toEqual([{ result: 'OK' }])
      const committed = performance.now()
      const seen = await eventually(
        async () => {
          const context = await requestContext(gateway, user.token)
          const metadata = context.claims?.['app_metadata'] as Record<string, unknown> | undefined
          return metadata?.['userrole'] === value ? context : undefined
        },
        2_000,
        `userrole ${value} through the gateway`,
      )
      latencies.push(performance.now() - committed)
      tries.push(seen.tries)
      expect(seen.value.claims?.['app_metadata']).toEqual({
        provider: 'email',
        providers: ['email'],
        userrole: value,
      })
      // The policy reads request.jwt.claims: its answer changes with the database, not the token.
      expect((await call(gateway, '/staff_board', user.token)).json).toEqual(
        value === 'STAFF' ? [{ id: 1, title: 'Rota' }] : [],
      )
    }
    // One query per change, none for the requests in between.
    expect(await metric(gateway, LOOKUPS)).toBe(lookups + 3)
    latencies.sort((a, b) => a - b)
    console.log(
      `commit-to-visible through the gateway: ${latencies.map((ms) => ms.toFixed(2)).join(', ')} ms (p50 ${percentile(latencies, 0.5).toFixed(2)} ms), requests until visible: ${tries.join(', ')}`,
    )
    expect(percentile(latencies, 0.5)).toBeLessThan(500)
  })

  test('app_metadata.role changes the role of the next request; a role outside the allow-list is 403 GW201', async () => {
    const { gateway, sql } = stack
    const user = await signUp(stack)
    expect(await requestContext(gateway, user.token)).toMatchObject({ status: 200, role: 'authenticated' })

    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"manager"}' where id = ${user.id}`
    await eventually(
      async () => ((await requestContext(gateway, user.token)).role === 'manager' ? true : undefined),
      2_000,
      'role manager',
    )
    // A manager sees every note (demo policy notes_manager_all).
    const notes = await call(gateway, '/notes?select=id&order=id', user.token)
    expect(notes.json).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }, { id: 5 }])

    const seenUpstream = stack.standIn.requests.length
    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"superuser"}' where id = ${user.id}`
    const refused = await eventually(
      async () => {
        const answer = await call(gateway, '/rpc/request_context', user.token, { method: 'POST' })
        return answer.status === 403 ? answer : undefined
      },
      2_000,
      'role refusal',
    )
    expect(refused.value.text).toBe(errorBody('GW201', 'Role is not allowed'))
    expect(refused.value.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(refused.value.headers.get('proxy-status')).toBe('postgrest-gateway; error=GW201')
    expect(refused.value.headers.get('www-authenticate')).toBeNull()
    // Nothing of a refused request reaches PostgREST (only the earlier polls that were let through).
    const upstreamAfter = stack.standIn.requests.length
    expect(upstreamAfter - seenUpstream).toBe(refused.tries - 1)
    expect((await call(gateway, '/notes', user.token)).status).toBe(403)
    expect(stack.standIn.requests.length).toBe(upstreamAfter)

    await sql`update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"staff"}' where id = ${user.id}`
    await eventually(
      async () => ((await requestContext(gateway, user.token)).role === 'staff' ? true : undefined),
      2_000,
      'role staff',
    )
  })

  test('a ban is 401 GW103 until lifted; a deleted user is 401 GW102, then GW101 once the row is gone', async () => {
    const { gateway, sql } = stack
    const user = await signUp(stack)
    expect((await requestContext(gateway, user.token)).status).toBe(200)

    await sql`update auth.users set banned_until = now() + interval '1 hour' where id = ${user.id}`
    const banned = await eventually(
      async () => {
        const answer = await call(gateway, '/notes', user.token)
        return answer.status === 401 ? answer : undefined
      },
      2_000,
      'ban',
    )
    expect(banned.value.text).toBe(errorBody('GW103', 'User is banned'))
    expect(banned.value.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="User is banned"',
    )
    expect(banned.value.headers.get('proxy-status')).toBe('postgrest-gateway; error=GW103')

    await sql`update auth.users set banned_until = null where id = ${user.id}`
    await eventually(
      async () => ((await call(gateway, '/notes', user.token)).status === 200 ? true : undefined),
      2_000,
      'unban',
    )

    await sql`update auth.users set deleted_at = now() where id = ${user.id}`
    const deleted = await eventually(
      async () => {
        const answer = await call(gateway, '/notes', user.token)
        return answer.status === 401 ? answer : undefined
      },
      2_000,
      'soft delete',
    )
    expect(deleted.value.text).toBe(errorBody('GW102', 'User has been deleted'))
    expect(deleted.value.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="User has been deleted"',
    )

    await sql`delete from auth.users where id = ${user.id}`
    const gone = await eventually(
      async () => {
        const answer = await call(gateway, '/notes', user.token)
        return answer.text.includes('GW101') ? answer : undefined
      },
      2_000,
      'hard delete',
    )
    expect(gone.value.status).toBe(401)
    expect(gone.value.text).toBe(errorBody('GW101', 'User not found'))
    expect(gone.value.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="User not found"',
    )
  })

  test('signing out (deleting the session row) ends that token at once: 401 GW104; other sessions go on', async () => {
    const { gateway, sql } = stack
    const user = await signUp(stack)
    const other = await signUp(stack)
    expect((await call(gateway, '/notes', user.token)).status).toBe(200)
    expect((await call(gateway, '/notes', other.token)).status).toBe(200)

    await sql`delete from auth.sessions where id = ${user.sessionId}`
    const ended = await eventually(
      async () => {
        const answer = await call(gateway, '/notes', user.token)
        return answer.status === 401 ? answer : undefined
      },
      2_000,
      'sign-out',
    )
    expect(ended.value.text).toBe(errorBody('GW104', 'Session has ended'))
    expect(ended.value.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="Session has ended"',
    )
    expect((await call(gateway, '/notes', other.token)).status).toBe(200)
  })

  test('500 concurrent first requests of a user never seen before: all succeed on exactly one lookup', async () => {
    const { gateway } = stack
    const user = await signUp(stack)
    const lookups = await metric(gateway, LOOKUPS)
    const answers = await Promise.all(
      Array.from({ length: 500 }, () => call(gateway, '/rpc/whoami', user.token, { method: 'POST' })),
    )
    const failures = answers.filter((answer) => answer.status !== 200)
    expect(failures.map((answer) => `${answer.status} ${answer.text}`)).toEqual([])
    for (const answer of answers) expect(answer.json).toMatchObject({ role: 'authenticated', uid: user.id })
    expect(await metric(gateway, LOOKUPS)).toBe(lookups + 1)
    expect(await metric(gateway, LOOKUPS, 'result="found"')).toBeGreaterThanOrEqual(1)
  })

  test('a cached user costs zero database queries per request', async () => {
    const { gateway, sql } = stack
    const user = await signUp(stack)
    expect((await call(gateway, '/rpc/whoami', user.token, { method: 'POST' })).status).toBe(200)
    const lookups = await metric(gateway, LOOKUPS)
    const hits = await metric(gateway, 'gateway_claims_cache_total', 'event="hit"')
    // Independently of the gateway's own counters: when each of its lookup connections last
    // started a statement, as PostgreSQL records it.
    const lastStatements = async () =>
      await sql<{ pid: number; started: Date }[]>`
        select pid, query_start as started from pg_stat_activity
        where datname = current_database() and application_name = 'postgrest-gateway' order by pid`
    const before = await lastStatements()
    expect(before.length).toBeGreaterThan(0)
    const requests = 200
    for (let i = 0; i < requests; i++) {
      const answer = await call(gateway, '/notes?select=id', user.token)
      expect(answer.status).toBe(200)
    }
    expect(await metric(gateway, LOOKUPS)).toBe(lookups)
    // Every request was answered from the cache (the user and the session).
    expect(await metric(gateway, 'gateway_claims_cache_total', 'event="hit"')).toBe(hits + requests)
    expect(await lastStatements()).toEqual(before)
  })

  test('two gateway processes on one database both see a change', async () => {
    const second = await stack.addGateway()
    const { gateway, sql } = stack
    const user = await signUp(stack)
    for (const g of [gateway, second]) {
      expect((await requestContext(g, user.token)).claims?.['app_metadata']).toEqual({
        provider: 'email',
        providers: ['email'],
      })
    }
    await sql`select public.set_claim(${user.id}::uuid, 'plan', '"pro"'::jsonb)`
    await Promise.all(
      [gateway, second].map((g) =>
        eventually(
          async () => {
            const metadata = (await requestContext(g, user.token)).claims?.['app_metadata'] as
              | Record<string, unknown>
              | undefined
            return metadata?.['plan'] === 'pro' ? true : undefined
          },
          2_000,
          'plan pro on both replicas',
        ),
      ),
    )
    await sql`update auth.users set banned_until = now() + interval '1 day' where id = ${user.id}`
    for (const g of [gateway, second]) {
      const banned = await eventually(
        async () => {
          const answer = await call(g, '/notes', user.token)
          return answer.status === 401 ? answer : undefined
        },
        2_000,
        'ban on both replicas',
      )
      expect(banned.value.text).toBe(errorBody('GW103', 'User is banned'))
    }
  })
})
