// End to end: Supabase custom access token hooks as Postgres functions, run by the gateway process on fresh claims.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { GatewayProcess } from '../../support/gateway-process.js'
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
} from '../claims/stack.js'

// Each hook records its calls, so that the database itself counts them.
const HOOKS = `
create table public.hook_calls (id bigserial primary key, hook text not null, user_id uuid not null);

-- Supabase's "role from app_metadata" example: the token's role follows the user's app_metadata.
create function public.role_from_app_metadata(event jsonb) returns jsonb
language plpgsql as $$
declare
  claims jsonb := event -> 'claims';
begin
  insert into public.hook_calls (hook, user_id) values ('role', (event ->> 'user_id')::uuid);
  if jsonb_typeof(claims -> 'app_metadata' -> 'role') = 'string' then
    claims := jsonb_set(claims, '{role}', claims -> 'app_metadata' -> 'role');
  end if;
  return jsonb_build_object('claims', claims);
end $$;

-- Supabase's "minimal JWT" example: only the required claims (and iss) are kept.
create function public.minimal_jwt(event jsonb) returns jsonb
language plpgsql as $$
declare
  original jsonb := event -> 'claims';
  claims jsonb := '{}';
  name text;
begin
  insert into public.hook_calls (hook, user_id) values ('minimal', (event ->> 'user_id')::uuid);
  foreach name in array array['iss', 'aud', 'exp', 'iat', 'sub', 'role', 'aal', 'session_id', 'email',
                              'phone', 'is_anonymous'] loop
    if original ? name then
      claims := claims || jsonb_build_object(name, original -> name);
    end if;
  end loop;
  return jsonb_build_object('claims', claims);
end $$;

-- A hook that refuses suspended users with Supabase's error shape.
create function public.refuse_suspended(event jsonb) returns jsonb
language plpgsql as $$
begin
  insert into public.hook_calls (hook, user_id) values ('refuse', (event ->> 'user_id')::uuid);
  if (event -> 'claims' -> 'app_metadata' ->> 'suspended') = 'true' then
    return jsonb_build_object('error',
      jsonb_build_object('http_code', 403, 'message', 'Account suspended, contact support'));
  end if;
  return jsonb_build_object('claims', event -> 'claims');
end $$;
`

const HOOK_CALLS = 'gateway_hook_calls_total'

let stack: Stack
let roleHook: GatewayProcess
let minimalHook: GatewayProcess
let refusingHook: GatewayProcess

beforeAll(async () => {
  stack = await startStack({
    adminUrl: adminUrl(),
    setupSql: HOOKS,
    env: {
      GATEWAY_HOOK_URI: 'pg-functions://postgres/public/role_from_app_metadata',
      // The role is read from the hook's output.
      GATEWAY_ROLE_CLAIM: 'role',
    },
  })
  roleHook = stack.gateway
  minimalHook = await stack.addGateway({
    GATEWAY_HOOK_URI: 'pg-functions://postgres/public/minimal_jwt',
    GATEWAY_ROLE_CLAIM: 'role',
  })
  refusingHook = await stack.addGateway({
    GATEWAY_HOOK_URI: 'pg-functions://postgres/public/refuse_suspended',
  })
})

afterAll(async () => {
  await stack?.close()
})

async function hookCalls(hook: string, userId: string): Promise<number> {
  const [row] = await stack.sql<{ n: number }[]>`
    select count(*)::int as n from public.hook_calls where hook = ${hook} and user_id = ${userId}`
  return row?.n ?? 0
}

/** The claims of the token the gateway minted, as the stand-in received it. */
function lastForwardedClaims(): Record<string, unknown> {
  const authorization = stack.standIn.requests.at(-1)?.authorization ?? ''
  const payload = authorization.replace(/^Bearer /, '').split('.')[1] ?? ''
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
}

describe('custom access token hook through the gateway', () => {
  test('a hook copying app_metadata.role onto role runs on fresh data, once per change', async () => {
    const user = await signUp(stack)
    expect(await requestContext(roleHook, user.token)).toMatchObject({
      status: 200,
      role: 'authenticated',
      claims: { role: 'authenticated', app_metadata: { provider: 'email', providers: ['email'] } },
    })
    expect(await hookCalls('role', user.id)).toBe(1)
    const ok = await metric(roleHook, HOOK_CALLS, 'result="ok"')

    // A cached user never costs a hook call.
    for (let i = 0; i < 20; i++) {
      expect((await call(roleHook, '/notes?select=id', user.token)).status).toBe(200)
    }
    expect(await hookCalls('role', user.id)).toBe(1)
    expect(await metric(roleHook, HOOK_CALLS, 'result="ok"')).toBe(ok)

    await stack.sql`select public.set_claim(${user.id}::uuid, 'role', '"manager"'::jsonb)`
    const promoted = await eventually(
      async () => {
        const context = await requestContext(roleHook, user.token)
        return context.role === 'manager' ? context : undefined
      },
      2_000,
      'the role the hook set',
    )
    expect(promoted.value.claims).toMatchObject({ role: 'manager', app_metadata: { role: 'manager' } })
    expect(await hookCalls('role', user.id)).toBe(2)
    expect(await metric(roleHook, HOOK_CALLS, 'result="ok"')).toBe(ok + 1)
    // The manager policy applies, with the same old token.
    const notes = await call(roleHook, '/notes?select=id&order=id', user.token)
    expect(notes.json).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }, { id: 5 }])
    expect(await hookCalls('role', user.id)).toBe(2)
  })

  test('a minimal-JWT hook: PostgREST sees only the claims it listed', async () => {
    const user = await signUp(stack)
    const context = await requestContext(minimalHook, user.token)
    expect(context.status).toBe(200)
    expect(context.role).toBe('authenticated')
    const listed = [
      'aal',
      'aud',
      'email',
      'exp',
      'iat',
      'is_anonymous',
      'iss',
      'phone',
      'role',
      'session_id',
      'sub',
    ]
    expect(Object.keys(context.claims ?? {}).sort()).toEqual(listed)
    expect(Object.keys(lastForwardedClaims()).sort()).toEqual(listed)
    expect(context.claims).toMatchObject({ sub: user.id, session_id: user.sessionId, role: 'authenticated' })
    expect(await hookCalls('minimal', user.id)).toBe(1)
  })

  test('a hook error {error: {http_code: 403, message}} is a 403 with a PostgREST-shaped body, until the user changes', async () => {
    const user = await signUp(stack, { provider: 'email', providers: ['email'], suspended: true })
    const seenUpstream = stack.standIn.requests.length
    const refused = await call(refusingHook, '/notes', user.token)
    expect(refused.status).toBe(403)
    expect(refused.text).toBe(errorBody('GW301', 'Account suspended, contact support'))
    expect(refused.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(refused.headers.get('proxy-status')).toBe('postgrest-gateway; error=GW301')
    // The refusal is held like a result: asking again costs no call and reaches nothing upstream.
    expect((await call(refusingHook, '/notes', user.token)).text).toBe(refused.text)
    expect(await hookCalls('refuse', user.id)).toBe(1)
    expect(stack.standIn.requests.length).toBe(seenUpstream)

    await stack.sql`select public.delete_claim(${user.id}::uuid, 'suspended')`
    await eventually(
      async () => ((await call(refusingHook, '/notes', user.token)).status === 200 ? true : undefined),
      2_000,
      'access after the suspension is lifted',
    )
    expect(await hookCalls('refuse', user.id)).toBe(2)
  })
})
