-- postgrest-gateway: claim-management functions with the signatures and results of
-- supabase-community/supabase-custom-claims, so existing callers (supabase.rpc('set_claim', ...),
-- RLS policies using get_my_claim) keep working. Behind the gateway, get_my_claims() and
-- get_my_claim() read app_metadata as of this request, not as of the token's sign-in; a
-- set_claim() fires the triggers of sql/install.sql, so every replica drops the user's entry.
--
-- Idempotent; installs into `public` like the original.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/custom-claims.sql
--
-- The admin gate differs from the original in one respect, deliberately: the original asks
-- `current_user`, which inside the SECURITY DEFINER functions below is always the owner, so any
-- signed-in user passed it. This one asks the role PostgREST switched to (the `role` setting,
-- which SECURITY DEFINER does not change).

begin;

-- True outside PostgREST (migrations, triggers, the SQL editor: no role switched, no claims);
-- through PostgREST: for service_role, or when the request's claims carry
-- app_metadata.claims_admin = true and have not expired.
create or replace function public.is_claims_admin() returns boolean
  language plpgsql stable set search_path = ''
  as $$
  declare
    request_role text := nullif(pg_catalog.current_setting('role', true), 'none');
    claims jsonb := nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb;
  begin
    if request_role is null and claims is null then
      return true;
    end if;
    if coalesce(request_role, claims ->> 'role') = 'service_role' then
      return true;
    end if;
    if claims is null then
      return false;
    end if;
    if extract(epoch from pg_catalog.now()) > coalesce((claims ->> 'exp')::numeric, 0) then
      return false;
    end if;
    return coalesce(claims -> 'app_metadata' -> 'claims_admin' = 'true'::jsonb, false);
  end
  $$;

create or replace function public.get_my_claims() returns jsonb
  language sql stable set search_path = ''
  as $$
    select coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata',
                    '{}'::jsonb)
  $$;

create or replace function public.get_my_claim(claim text) returns jsonb
  language sql stable set search_path = ''
  as $$
    select nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' -> claim
  $$;

create or replace function public.get_claims(uid uuid) returns jsonb
  language plpgsql security definer set search_path = ''
  as $$
  declare
    result jsonb;
  begin
    if not public.is_claims_admin() then
      return '{"error":"access denied"}'::jsonb;
    end if;
    select raw_app_meta_data into result from auth.users where id = uid;
    return result;
  end
  $$;

create or replace function public.get_claim(uid uuid, claim text) returns jsonb
  language plpgsql security definer set search_path = ''
  as $$
  declare
    result jsonb;
  begin
    if not public.is_claims_admin() then
      return '{"error":"access denied"}'::jsonb;
    end if;
    select raw_app_meta_data -> claim into result from auth.users where id = uid;
    return result;
  end
  $$;

create or replace function public.set_claim(uid uuid, claim text, value jsonb) returns text
  language plpgsql security definer set search_path = ''
  as $$
  begin
    if not public.is_claims_admin() then
      return 'error: access denied';
    end if;
    -- coalesce: a user without metadata gets the claim rather than staying null.
    update auth.users
       set raw_app_meta_data = coalesce(raw_app_meta_data, '{}'::jsonb) || pg_catalog.jsonb_build_object(claim, value)
     where id = uid;
    return 'OK';
  end
  $$;

create or replace function public.delete_claim(uid uuid, claim text) returns text
  language plpgsql security definer set search_path = ''
  as $$
  begin
    if not public.is_claims_admin() then
      return 'error: access denied';
    end if;
    update auth.users set raw_app_meta_data = raw_app_meta_data - claim where id = uid;
    return 'OK';
  end
  $$;

commit;
