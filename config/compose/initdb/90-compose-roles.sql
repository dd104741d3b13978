-- Local compose stack only: the roles PostgREST needs, created if the demo SQL did not create them.
-- Runs after sql/demo/*.sql and sql/install.sql (docker-entrypoint-initdb.d runs files in name order).
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator noinherit;
  end if;
end
$$;

-- A known local password: this file is never used outside docker compose.
alter role authenticator with login password 'authenticator';
grant anon to authenticator;
grant authenticated to authenticator;
grant usage on schema public to anon, authenticated;
