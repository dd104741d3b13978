-- postgrest-gateway: removes everything sql/install.sql created (triggers, functions, schema).
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/uninstall.sql

begin;

do $uninstall$
begin
  if to_regclass('auth.users') is not null then
    drop trigger if exists postgrest_gateway_user_update on auth.users;
    drop trigger if exists postgrest_gateway_user_insert_delete on auth.users;
    drop trigger if exists postgrest_gateway_user_truncate on auth.users;
  end if;
  if to_regclass('auth.sessions') is not null then
    drop trigger if exists postgrest_gateway_session_update on auth.sessions;
    drop trigger if exists postgrest_gateway_session_delete on auth.sessions;
    drop trigger if exists postgrest_gateway_session_truncate on auth.sessions;
  end if;
end
$uninstall$;

-- No cascade: anything else that came to depend on these objects makes this fail instead of
-- being dropped silently.
drop function if exists postgrest_gateway.on_user_change();
drop function if exists postgrest_gateway.on_session_change();
drop function if exists postgrest_gateway.on_truncate();
drop function if exists postgrest_gateway.notify_user(text);
drop function if exists postgrest_gateway.notify_session(text, text);
drop function if exists postgrest_gateway.notify_reset();
drop function if exists postgrest_gateway.channel();
drop table if exists postgrest_gateway.config;
drop schema if exists postgrest_gateway;

commit;
