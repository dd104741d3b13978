-- Custom access token hooks for the integration tests: the examples from Supabase's documentation
-- (guides/auth/auth-hooks/custom-access-token-hook), unchanged except for the schema and one fix
-- noted below, plus hooks that misbehave on purpose.

create schema if not exists auth;
-- The columns of Supabase's auth.users that these hooks read (a Supabase-shaped schema may exist).
create table if not exists auth.users (
  id uuid primary key,
  email text,
  is_sso_user boolean not null default false
);

create schema if not exists hooks;

-- "Minimal JWT": keep only the listed claims.
create or replace function hooks.minimal_jwt(event jsonb)
returns jsonb
language plpgsql
as $$
  declare
    original_claims jsonb;
    new_claims jsonb;
    claim text;
  begin
    original_claims = event->'claims';
    new_claims = '{}'::jsonb;

    foreach claim in array array[
      -- add claims you want to keep here
      'iss',
      'aud',
      'exp',
      'iat',
      'sub',
      'role',
      'aal',
      'session_id',
      'email',
      'phone',
      'is_anonymous'
   ] loop
      if original_claims ? claim then
        -- original_claims contains one of the listed claims, set it on new_claims
        new_claims = jsonb_set(new_claims, array[claim], original_claims->claim);
      end if;
    end loop;

    return jsonb_build_object('claims', new_claims);
  end
$$;

-- "Add admin role": an admin flag from a table.
create table if not exists hooks.profiles (
  user_id uuid not null primary key,
  is_admin boolean not null default false
);

create or replace function hooks.add_admin(event jsonb)
returns jsonb
language plpgsql
as $$
  declare
    claims jsonb;
    is_admin boolean;
  begin
    -- Check if the user is marked as admin in the profiles table. The documentation writes
    -- `select is_admin into is_admin`, which PL/pgSQL refuses (column reference "is_admin" is
    -- ambiguous, plpgsql.variable_conflict = error): the column is qualified here.
    select p.is_admin into is_admin from hooks.profiles p where user_id = (event->>'user_id')::uuid;

    -- Proceed only if the user is an admin
    if is_admin then
      claims := event->'claims';

      -- Check if 'app_metadata' exists in claims
      if jsonb_typeof(claims->'app_metadata') is null then
        -- If 'app_metadata' does not exist, create an empty object
        claims := jsonb_set(claims, '{app_metadata}', '{}');
      end if;

      -- Set a claim of 'admin'
      claims := jsonb_set(claims, '{app_metadata, admin}', 'true');

      -- Update the 'claims' object in the original event
      event := jsonb_set(event, '{claims}', claims);
    end if;

    -- Return the modified or original event
    return event;
  end;
$$;

-- "Add claim" (the documentation's HTTP example, in SQL): copy app_metadata.role onto role.
create or replace function hooks.role_from_app_metadata(event jsonb)
returns jsonb
language plpgsql
as $$
  declare
    claims jsonb := event->'claims';
  begin
    if jsonb_typeof(claims->'app_metadata'->'role') = 'string' then
      claims := jsonb_set(claims, '{role}', claims->'app_metadata'->'role');
    end if;
    return jsonb_build_object('claims', claims);
  end;
$$;

-- "Restrict access to SSO users", as documented. On a refresh authentication_method is
-- 'token_refresh', never 'sso/saml': only the allowed emails and domain pass, in Supabase as here.
create or replace function hooks.restrict_application_access(event jsonb)
 returns jsonb
 language plpgsql
as $function$
declare
    authentication_method text;
    email_claim text;
    allowed_emails text[] := array['myemail@company.com', 'example@company.com'];
begin
    -- Extract email claim and authentication method
    email_claim = event->'claims'->>'email';
    authentication_method = event->'authentication_method';
    -- Authentication methods come double quoted (e.g. "otp")
    authentication_method = replace(authentication_method, '"', '');

    if email_claim ilike '%@supabase.io' or authentication_method = 'sso/saml' or email_claim = any(allowed_emails) then
        return event;
    end if;

    -- If none of the conditions are met, return an error
    return jsonb_build_object(
        'error', jsonb_build_object(
            'http_code', 403,
            'message', 'Staging access is only allowed to team members. Please use your @company.com account instead'
        )
    );
end;
$function$;

-- Refusing SSO users by what the user record says (auth.users.is_sso_user), which holds on refresh.
create or replace function hooks.refuse_sso_users(event jsonb)
returns jsonb
language plpgsql
stable
as $$
  begin
    if exists (select 1 from auth.users where id = (event->>'user_id')::uuid and is_sso_user) then
      return jsonb_build_object(
        'error', jsonb_build_object('http_code', 403, 'message', 'SSO accounts cannot use this API')
      );
    end if;
    return jsonb_build_object('claims', event->'claims');
  end;
$$;

-- Misbehaving hooks.
create or replace function hooks.sleepy(event jsonb)
returns jsonb
language sql
as $$ select pg_sleep(10); select jsonb_build_object('claims', event->'claims') $$;

create or replace function hooks.error_without_code(event jsonb)
returns jsonb
language sql
as $$ select jsonb_build_object('error', jsonb_build_object('message', 'Account under review')) $$;

create or replace function hooks.error_without_message(event jsonb)
returns jsonb
language sql
as $$ select jsonb_build_object('claims', event->'claims', 'error', jsonb_build_object('http_code', 403)) $$;

create or replace function hooks.drops_email(event jsonb)
returns jsonb
language sql
as $$ select jsonb_build_object('claims', (event->'claims') - 'email') $$;

create or replace function hooks.bare_claims(event jsonb)
returns jsonb
language sql
as $$ select event->'claims' $$;

create or replace function hooks.returns_null(event jsonb)
returns jsonb
language sql
as $$ select null::jsonb $$;

create or replace function hooks.raises(event jsonb)
returns jsonb
language plpgsql
as $$ begin raise exception 'lookup failed for %', event->'claims'->>'email'; end; $$;

create or replace function hooks.huge(event jsonb)
returns jsonb
language sql
as $$ select jsonb_build_object('claims', (event->'claims') || jsonb_build_object('padding', repeat('x', 100000))) $$;

-- A mixed-case function name: the URI's identifiers are quoted, as Supabase quotes them.
create or replace function hooks."CamelHook"(event jsonb)
returns jsonb
language sql
as $$ select jsonb_build_object('claims', (event->'claims') || '{"camel": true}') $$;
