-- postgrest-gateway: invalidation triggers. Every gateway replica LISTENs on one channel and evicts
-- a user's cached claims the moment the user's app_metadata, role, ban or deletion changes, and a
-- session's entry the moment it is signed out.
--
-- Idempotent and transactional: run it again after an upgrade, it changes nothing else.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/install.sql
--
-- Channel: `postgrest_gateway` unless changed here (and in the gateway's `db.notifyChannel`):
--   update postgrest_gateway.config set notify_channel = 'my_channel';
-- Re-running this file keeps the configured channel.
--
-- Payloads (JSON): {"user_id": "<uuid>"} for a user, {"user_id": "<uuid>", "session_id": "<uuid>"}
-- for a session, {"reset": true} to drop everything (also sent on TRUNCATE). The gateway treats any
-- payload it cannot read as "drop everything". Other schemas can call
-- postgrest_gateway.notify_user(id), postgrest_gateway.notify_session(user_id, session_id) and
-- postgrest_gateway.notify_reset() from their own triggers.

begin;

create schema if not exists postgrest_gateway;
revoke all on schema postgrest_gateway from public;

create table if not exists postgrest_gateway.config (
  -- A single row: the table exists only to make the channel configurable and survive re-installs.
  singleton boolean primary key default true check (singleton),
  notify_channel text not null default 'postgrest_gateway' check (notify_channel <> '')
);
insert into postgrest_gateway.config (singleton) values (true) on conflict (singleton) do nothing;
revoke all on postgrest_gateway.config from public;

create or replace function postgrest_gateway.channel() returns text
  language sql stable security definer set search_path = ''
  as $$ select coalesce((select notify_channel from postgrest_gateway.config), 'postgrest_gateway') $$;

create or replace function postgrest_gateway.notify_user(user_id text) returns void
  language sql security definer set search_path = ''
  as $$ select pg_catalog.pg_notify(postgrest_gateway.channel(), pg_catalog.json_build_object('user_id', user_id)::text) $$;

create or replace function postgrest_gateway.notify_session(user_id text, session_id text) returns void
  language sql security definer set search_path = ''
  as $$
    select pg_catalog.pg_notify(
      postgrest_gateway.channel(),
      pg_catalog.json_build_object('user_id', user_id, 'session_id', session_id)::text)
  $$;

create or replace function postgrest_gateway.notify_reset() returns void
  language sql security definer set search_path = ''
  as $$ select pg_catalog.pg_notify(postgrest_gateway.channel(), '{"reset":true}') $$;

-- Row triggers on auth.users: INSERT too, since a gateway may have cached "no such user" for the id.
create or replace function postgrest_gateway.on_user_change() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  begin
    if tg_op = 'DELETE' then
      perform postgrest_gateway.notify_user(old.id::text);
    else
      perform postgrest_gateway.notify_user(new.id::text);
    end if;
    return null;
  end
  $$;

create or replace function postgrest_gateway.on_session_change() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  begin
    perform postgrest_gateway.notify_session(old.user_id::text, old.id::text);
    return null;
  end
  $$;

create or replace function postgrest_gateway.on_truncate() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
  begin
    perform postgrest_gateway.notify_reset();
    return null;
  end
  $$;

revoke all on all functions in schema postgrest_gateway from public;

-- The triggers go only where Supabase's tables exist; other schemas call the notify_* functions.
do $install$
begin
  if to_regclass('auth.users') is not null then
    drop trigger if exists postgrest_gateway_user_update on auth.users;
    drop trigger if exists postgrest_gateway_user_insert_delete on auth.users;
    drop trigger if exists postgrest_gateway_user_truncate on auth.users;
    -- Only a real change notifies: GoTrue updates auth.users on every sign-in (last_sign_in_at).
    create trigger postgrest_gateway_user_update
      after update of raw_app_meta_data, role, banned_until, deleted_at on auth.users
      for each row
      when (old.raw_app_meta_data is distinct from new.raw_app_meta_data
        or old.role is distinct from new.role
        or old.banned_until is distinct from new.banned_until
        or old.deleted_at is distinct from new.deleted_at)
      execute function postgrest_gateway.on_user_change();
    create trigger postgrest_gateway_user_insert_delete
      after insert or delete on auth.users
      for each row execute function postgrest_gateway.on_user_change();
    create trigger postgrest_gateway_user_truncate
      after truncate on auth.users
      for each statement execute function postgrest_gateway.on_truncate();
  end if;
  if to_regclass('auth.sessions') is not null then
    drop trigger if exists postgrest_gateway_session_update on auth.sessions;
    drop trigger if exists postgrest_gateway_session_delete on auth.sessions;
    drop trigger if exists postgrest_gateway_session_truncate on auth.sessions;
    create trigger postgrest_gateway_session_update
      after update of not_after on auth.sessions
      for each row
      when (old.not_after is distinct from new.not_after)
      execute function postgrest_gateway.on_session_change();
    create trigger postgrest_gateway_session_delete
      after delete on auth.sessions
      for each row execute function postgrest_gateway.on_session_change();
    create trigger postgrest_gateway_session_truncate
      after truncate on auth.sessions
      for each statement execute function postgrest_gateway.on_truncate();
  end if;
end
$install$;

commit;
