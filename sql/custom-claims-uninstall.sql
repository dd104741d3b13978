-- postgrest-gateway: removes the claim-management functions of sql/custom-claims.sql.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/custom-claims-uninstall.sql

begin;

drop function if exists public.delete_claim(uuid, text);
drop function if exists public.set_claim(uuid, text, jsonb);
drop function if exists public.get_claim(uuid, text);
drop function if exists public.get_claims(uuid);
drop function if exists public.get_my_claim(text);
drop function if exists public.get_my_claims();
drop function if exists public.is_claims_admin();

commit;
