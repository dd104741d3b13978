import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  type Config,
  ConfigError,
  DEFAULT_SESSION_QUERY,
  DEFAULT_USER_QUERY,
  loadConfig,
  redactConfig,
} from '../../../src/config/index.js'
import { BASE_ENV, memoryFs, SECRET } from './support.js'

const CWD = '/srv/gateway'

function load(env: Record<string, string>, files: Record<string, string> = {}, argv: string[] = []): Config {
  return loadConfig({ argv, env, fs: memoryFs(files), cwd: CWD })
}

/** The one-line message of the ConfigError that loading throws. */
function failure(
  env: Record<string, string>,
  files: Record<string, string> = {},
  argv: string[] = [],
): string {
  try {
    load(env, files, argv)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    const message = (err as Error).message
    expect(message).not.toContain('\n')
    return message
  }
  throw new Error('loadConfig did not throw')
}

const EXPECTED_DEFAULTS = {
  server: {
    host: '0.0.0.0',
    port: 8080,
    adminHost: '0.0.0.0',
    adminPort: 8081,
    maxHeaderBytes: 16384,
    headersTimeoutMs: 10000,
    requestTimeoutMs: 0,
    keepAliveTimeoutMs: 65000,
    trustForwardedHeaders: false,
  },
  upstream: {
    url: 'http://127.0.0.1:3000',
    jwtSecret: SECRET,
    jwtSecretIsBase64: false,
    timeoutMs: 30000,
    bodyTimeoutMs: 30000,
    connectTimeoutMs: 5000,
    connections: 128,
  },
  jwt: {
    secret: null,
    secretIsBase64: false,
    jwksUrl: null,
    aud: null,
    iss: null,
    clockSkewSeconds: 30,
    cacheMaxEntries: 100000,
    jwksMaxAgeSeconds: 600,
    jwksCooldownSeconds: 30,
    jwksTimeoutMs: 5000,
  },
  db: {
    url: null,
    poolSize: 4,
    lookupTimeoutMs: 2000,
    userQuery: DEFAULT_USER_QUERY,
    sessionQuery: DEFAULT_SESSION_QUERY,
    notifyChannel: 'postgrest_gateway',
  },
  claims: {
    cacheMaxEntries: 100000,
    ttlSeconds: 60,
    maxStaleSeconds: 300,
    disconnectedTtlSeconds: 5,
    onDatabaseDown: 'fail',
  },
  role: {
    claim: 'app_metadata.role',
    claimPath: ['app_metadata', 'role'],
    map: new Map(),
    allowed: new Set(['authenticated']),
    defaultRole: 'authenticated',
    anonRole: 'anon',
    allowPrivileged: false,
  },
  anonymous: 'allow',
  hook: { uri: null, secrets: [], timeoutMs: 2000, maxResponseBytes: 65536 },
  mint: { claimsAllowed: null, ttlSeconds: 3600, warnBytes: 4096, kid: null, cacheMaxEntries: 10000 },
  log: { level: 'info', pretty: false },
  shutdown: { delayMs: 5000, deadlineMs: 30000 },
  source: null,
}

describe('loadConfig defaults', () => {
  it('fills every option from its default when only the upstream secret is given', () => {
    expect(load(BASE_ENV)).toEqual(EXPECTED_DEFAULTS)
  })

  it('returns a deep-frozen object', () => {
    const config = load(BASE_ENV)
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.server)).toBe(true)
    expect(Object.isFrozen(config.role)).toBe(true)
    expect(Object.isFrozen(config.role.claimPath)).toBe(true)
    expect(Object.isFrozen(config.hook.secrets)).toBe(true)
    expect(() => {
      ;(config.server as { port: number }).port = 1
    }).toThrow(TypeError)
    expect(() => {
      ;(config.role.claimPath as string[]).push('x')
    }).toThrow(TypeError)
  })

  it('treats empty environment values as unset', () => {
    expect(load({ ...BASE_ENV, GATEWAY_PORT: '', GATEWAY_JWT_SECRET: '', GATEWAY_CONFIG: '' })).toEqual(
      EXPECTED_DEFAULTS,
    )
  })
})

const YAML_FILE = `
server:
  port: 9000
  host: 127.0.0.1
upstream:
  url: http://postgrest:3000
  jwtSecret: "${SECRET}"
role:
  claim: $.app_metadata.plan_role
  map:
    MANAGER: manager
    "urn:x:admin": admin
  allowed: [authenticated, manager, admin]
  default: authenticated
mint:
  claimsAllowed: [sub, role, exp]
anonymous: deny
log:
  level: debug
`

describe('loadConfig sources and precedence', () => {
  it('reads the YAML file named by GATEWAY_CONFIG, relative to the working directory', () => {
    const config = load({ GATEWAY_CONFIG: 'gateway.yaml' }, { '/srv/gateway/gateway.yaml': YAML_FILE })
    expect(config.source).toBe('/srv/gateway/gateway.yaml')
    expect(config.server.port).toBe(9000)
    expect(config.server.host).toBe('127.0.0.1')
    expect(config.upstream.url).toBe('http://postgrest:3000')
    expect(config.role.claim).toBe('app_metadata.plan_role')
    expect(config.role.claimPath).toEqual(['app_metadata', 'plan_role'])
    expect(config.role.map).toEqual(
      new Map([
        ['MANAGER', 'manager'],
        ['urn:x:admin', 'admin'],
      ]),
    )
    expect(config.role.allowed).toEqual(new Set(['authenticated', 'manager', 'admin']))
    expect(config.mint.claimsAllowed).toEqual(['sub', 'role', 'exp'])
    expect(config.anonymous).toBe('deny')
    expect(config.log.level).toBe('debug')
  })

  it('lets environment variables override the file, and --config override GATEWAY_CONFIG', () => {
    const config = load(
      {
        GATEWAY_CONFIG: '/etc/other.yaml',
        GATEWAY_PORT: '9100',
        GATEWAY_ROLES_ALLOWED: 'authenticated, manager ,admin,editor',
        GATEWAY_ROLE_MAP: 'MANAGER:manager,urn:x:admin:admin,EDIT:editor',
        GATEWAY_ANONYMOUS: 'allow',
        GATEWAY_LOG_PRETTY: 'YES',
      },
      { '/etc/gateway.yaml': YAML_FILE },
      ['--config', '/etc/gateway.yaml'],
    )
    expect(config.source).toBe('/etc/gateway.yaml')
    expect(config.server.port).toBe(9100)
    expect(config.server.host).toBe('127.0.0.1')
    expect(config.role.allowed).toEqual(new Set(['authenticated', 'manager', 'admin', 'editor']))
    expect(config.role.map).toEqual(
      new Map([
        ['MANAGER', 'manager'],
        ['urn:x:admin', 'admin'],
        ['EDIT', 'editor'],
      ]),
    )
    expect(config.anonymous).toBe('allow')
    expect(config.log.pretty).toBe(true)
  })

  it('treats null in YAML as "use the default" and disables the session check with off or empty', () => {
    const file = `upstream: {jwtSecret: "${SECRET}"}\nserver: {port: ~}\ndb: {sessionQuery: "off"}\njwt:\n`
    const config = load({ GATEWAY_CONFIG: '/c.yaml' }, { '/c.yaml': file })
    expect(config.server.port).toBe(8080)
    expect(config.db.sessionQuery).toBeNull()
    expect(load({ ...BASE_ENV, GATEWAY_DB_SESSION_QUERY: '' }).db.sessionQuery).toBeNull()
    expect(load({ ...BASE_ENV, GATEWAY_DB_SESSION_QUERY: 'OFF' }).db.sessionQuery).toBeNull()
  })

  it('loads an empty YAML file as all defaults', () => {
    expect(load({ ...BASE_ENV, GATEWAY_CONFIG: '/c.yaml' }, { '/c.yaml': '' })).toEqual({
      ...EXPECTED_DEFAULTS,
      source: '/c.yaml',
    })
  })

  it('parses every other option from the environment', () => {
    const config = load({
      ...BASE_ENV,
      GATEWAY_ADMIN_HOST: '127.0.0.1',
      GATEWAY_ADMIN_PORT: '0',
      GATEWAY_MAX_HEADER_BYTES: '32768',
      GATEWAY_HEADERS_TIMEOUT_MS: '5000',
      GATEWAY_REQUEST_TIMEOUT_MS: '60000',
      GATEWAY_KEEP_ALIVE_TIMEOUT_MS: '75000',
      GATEWAY_TRUST_FORWARDED: 'true',
      GATEWAY_UPSTREAM_URL: 'https://rest.example.com/v1',
      GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64: 'false',
      GATEWAY_UPSTREAM_TIMEOUT_MS: '10',
      GATEWAY_UPSTREAM_BODY_TIMEOUT_MS: '0',
      GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS: '20',
      GATEWAY_UPSTREAM_CONNECTIONS: '8',
      GATEWAY_UPSTREAM_JWT_KID: 'gateway-1',
      GATEWAY_JWT_SECRET: '{"keys":[]}',
      GATEWAY_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json',
      GATEWAY_JWT_AUD: 'authenticated',
      GATEWAY_JWT_ISS: 'https://idp.example.com',
      GATEWAY_JWT_CLOCK_SKEW_SECONDS: '0',
      GATEWAY_JWT_CACHE_MAX_ENTRIES: '10',
      GATEWAY_JWKS_MAX_AGE_SECONDS: '60',
      GATEWAY_JWKS_COOLDOWN_SECONDS: '1',
      GATEWAY_JWKS_TIMEOUT_MS: '100',
      GATEWAY_DB_URL: 'postgresql://gateway:pw@db:5432/postgres',
      GATEWAY_DB_POOL_SIZE: '2',
      GATEWAY_DB_LOOKUP_TIMEOUT_MS: '500',
      GATEWAY_DB_USER_QUERY: 'select app_metadata from users where id = $1',
      GATEWAY_DB_SESSION_QUERY: 'select 1 from sessions where id = $1',
      GATEWAY_DB_NOTIFY_CHANNEL: 'claims_changed',
      GATEWAY_CLAIMS_CACHE_MAX_ENTRIES: '50',
      GATEWAY_CLAIMS_TTL_SECONDS: '30',
      GATEWAY_CLAIMS_MAX_STALE_SECONDS: '0',
      GATEWAY_CLAIMS_DISCONNECTED_TTL_SECONDS: '1',
      GATEWAY_CLAIMS_ON_DB_DOWN: 'token',
      GATEWAY_ROLE_CLAIM: '.role',
      GATEWAY_DEFAULT_ROLE: 'authenticated',
      GATEWAY_ANON_ROLE: 'web_anon',
      GATEWAY_ALLOW_PRIVILEGED_ROLES: '0',
      GATEWAY_ANONYMOUS: 'deny',
      GATEWAY_HOOK_URI: 'pg-functions://postgres/public/custom_access_token_hook',
      GATEWAY_HOOK_TIMEOUT_MS: '300',
      GATEWAY_HOOK_MAX_RESPONSE_BYTES: '1024',
      GATEWAY_MINT_CLAIMS: 'sub,role,exp,app_metadata',
      GATEWAY_MINT_TTL_SECONDS: '600',
      GATEWAY_MINT_WARN_BYTES: '2048',
      GATEWAY_MINT_CACHE_MAX_ENTRIES: '0',
      GATEWAY_LOG_LEVEL: 'warn',
      GATEWAY_LOG_PRETTY: 'off',
      GATEWAY_SHUTDOWN_DELAY_MS: '0',
      GATEWAY_SHUTDOWN_DEADLINE_MS: '1000',
    })
    expect(config).toEqual({
      server: {
        host: '0.0.0.0',
        port: 8080,
        adminHost: '127.0.0.1',
        adminPort: 0,
        maxHeaderBytes: 32768,
        headersTimeoutMs: 5000,
        requestTimeoutMs: 60000,
        keepAliveTimeoutMs: 75000,
        trustForwardedHeaders: true,
      },
      upstream: {
        url: 'https://rest.example.com/v1',
        jwtSecret: SECRET,
        jwtSecretIsBase64: false,
        timeoutMs: 10,
        bodyTimeoutMs: 0,
        connectTimeoutMs: 20,
        connections: 8,
      },
      jwt: {
        secret: '{"keys":[]}',
        secretIsBase64: false,
        jwksUrl: 'https://idp.example.com/.well-known/jwks.json',
        aud: 'authenticated',
        iss: 'https://idp.example.com',
        clockSkewSeconds: 0,
        cacheMaxEntries: 10,
        jwksMaxAgeSeconds: 60,
        jwksCooldownSeconds: 1,
        jwksTimeoutMs: 100,
      },
      db: {
        url: 'postgresql://gateway:pw@db:5432/postgres',
        poolSize: 2,
        lookupTimeoutMs: 500,
        userQuery: 'select app_metadata from users where id = $1',
        sessionQuery: 'select 1 from sessions where id = $1',
        notifyChannel: 'claims_changed',
      },
      claims: {
        cacheMaxEntries: 50,
        ttlSeconds: 30,
        maxStaleSeconds: 0,
        disconnectedTtlSeconds: 1,
        onDatabaseDown: 'token',
      },
      role: {
        claim: 'role',
        claimPath: ['role'],
        map: new Map(),
        allowed: new Set(['authenticated']),
        defaultRole: 'authenticated',
        anonRole: 'web_anon',
        allowPrivileged: false,
      },
      anonymous: 'deny',
      hook: {
        uri: 'pg-functions://postgres/public/custom_access_token_hook',
        secrets: [],
        timeoutMs: 300,
        maxResponseBytes: 1024,
      },
      mint: {
        claimsAllowed: ['sub', 'role', 'exp', 'app_metadata'],
        ttlSeconds: 600,
        warnBytes: 2048,
        kid: 'gateway-1',
        cacheMaxEntries: 0,
      },
      log: { level: 'warn', pretty: false },
      shutdown: { delayMs: 0, deadlineMs: 1000 },
      source: null,
    })
  })

  it('ignores Kubernetes service-link variables of a Service named gateway', () => {
    const config = load({
      ...BASE_ENV,
      GATEWAY_SERVICE_HOST: '10.0.0.11',
      GATEWAY_SERVICE_PORT: '8080',
      GATEWAY_SERVICE_PORT_HTTP: '8080',
      GATEWAY_PORT_8080_TCP: 'tcp://10.0.0.11:8080',
      GATEWAY_PORT_8080_TCP_PROTO: 'tcp',
      GATEWAY_PORT_8080_TCP_PORT: '8080',
      GATEWAY_PORT_8080_TCP_ADDR: '10.0.0.11',
      GATEWAY_ADMIN_SERVICE_HOST: '10.0.0.12',
    })
    expect(config.server.port).toBe(8080)
  })
})

describe('loadConfig secrets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-config-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const upstreamFile = join(dir, 'upstream-secret')
  const dbFile = join(dir, 'db-url')
  const hookFile = join(dir, 'hook-secrets')
  const hookSecret = 'v1,whsec_' + 'A'.repeat(32)
  writeFileSync(upstreamFile, SECRET + '\n')
  writeFileSync(dbFile, 'postgres://gateway:s3cret@db/postgres\r\n')
  writeFileSync(hookFile, `${hookSecret}|${hookSecret.replace('A', 'B')}\n`)

  it('reads @/path values and *_FILE variables from real files, trailing newline trimmed', () => {
    const config = loadConfig({
      argv: [],
      env: {
        GATEWAY_UPSTREAM_JWT_SECRET: '@' + upstreamFile,
        GATEWAY_DB_URL_FILE: dbFile,
        GATEWAY_HOOK_SECRETS_FILE: hookFile,
        GATEWAY_HOOK_URI: 'https://hooks.example.com/token',
      },
    })
    expect(config.upstream.jwtSecret).toBe(SECRET)
    expect(config.db.url).toBe('postgres://gateway:s3cret@db/postgres')
    expect(config.hook.secrets).toEqual([hookSecret, hookSecret.replace('A', 'B')])
  })

  it('reads @path values in YAML relative to the YAML file, and re-reads them on every load', () => {
    const files: Record<string, string> = {
      '/etc/gateway/gateway.yaml':
        'upstream:\n  jwtSecret: "@secrets/upstream"\njwt:\n  secret: "@/run/jwt"\n',
      '/etc/gateway/secrets/upstream': SECRET + '\n',
      '/run/jwt': '{"kty":"oct","k":"abc"}\n',
    }
    const fs = memoryFs(files)
    const first = loadConfig({ argv: ['--config=/etc/gateway/gateway.yaml'], env: {}, fs, cwd: CWD })
    expect(first.upstream.jwtSecret).toBe(SECRET)
    expect(first.jwt.secret).toBe('{"kty":"oct","k":"abc"}')
    files['/etc/gateway/secrets/upstream'] = SECRET.toUpperCase()
    const second = loadConfig({ argv: ['--config=/etc/gateway/gateway.yaml'], env: {}, fs, cwd: CWD })
    expect(second.upstream.jwtSecret).toBe(SECRET.toUpperCase())
    expect(fs.reads).toEqual([
      '/etc/gateway/gateway.yaml',
      '/etc/gateway/secrets/upstream',
      '/run/jwt',
      '/etc/gateway/gateway.yaml',
      '/etc/gateway/secrets/upstream',
      '/run/jwt',
    ])
  })

  it('accepts a JWK written as a YAML mapping, kept as its JSON text', () => {
    const file = `upstream:\n  jwtSecret:\n    kty: EC\n    crv: P-256\n    d: abc\njwt:\n  secret: {keys: []}\n`
    const config = load({ GATEWAY_CONFIG: '/c.yaml' }, { '/c.yaml': file })
    expect(config.upstream.jwtSecret).toBe('{"kty":"EC","crv":"P-256","d":"abc"}')
    expect(config.jwt.secret).toBe('{"keys":[]}')
    expect(failure({ GATEWAY_CONFIG: '/c.yaml' }, { '/c.yaml': 'upstream:\n  jwtSecret: [1]\n' })).toBe(
      'upstream.jwtSecret (GATEWAY_UPSTREAM_JWT_SECRET) in /c.yaml must be a non-empty string, or a JWK or JWK Set',
    )
  })

  it('lets a *_FILE variable override the YAML value', () => {
    const config = load(
      { GATEWAY_CONFIG: '/c.yaml', GATEWAY_UPSTREAM_JWT_SECRET_FILE: 'run/key' },
      { '/c.yaml': `upstream: {jwtSecret: "${'x'.repeat(40)}"}`, '/srv/gateway/run/key': SECRET },
    )
    expect(config.upstream.jwtSecret).toBe(SECRET)
  })
})

const HOOK_SECRET = 'v1,whsec_' + 'c2VjcmV0'.repeat(4)

describe('loadConfig validation messages', () => {
  const cases: [string, Record<string, string>, string][] = [
    [
      'a missing upstream key',
      {},
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is required: the key that signs tokens for PostgREST',
    ],
    [
      'an unknown GATEWAY_ variable, with a suggestion',
      { ...BASE_ENV, GATEWAY_ANONYMOS: 'deny' },
      'GATEWAY_ANONYMOS is not a known option (did you mean GATEWAY_ANONYMOUS?); unknown GATEWAY_* variables are refused so that a typo cannot go unnoticed',
    ],
    [
      'an unknown GATEWAY_ variable without a close name',
      { ...BASE_ENV, GATEWAY_SOMETHING_ELSE_ENTIRELY: '1' },
      'GATEWAY_SOMETHING_ELSE_ENTIRELY is not a known option; unknown GATEWAY_* variables are refused so that a typo cannot go unnoticed',
    ],
    [
      'a non-numeric port',
      { ...BASE_ENV, GATEWAY_PORT: 'eighty' },
      'GATEWAY_PORT (server.port) must be an integer from 0 to 65535, got "eighty"',
    ],
    [
      'a port out of range',
      { ...BASE_ENV, GATEWAY_ADMIN_PORT: '70000' },
      'GATEWAY_ADMIN_PORT (server.adminPort) must be an integer from 0 to 65535, got "70000"',
    ],
    [
      'a Kubernetes service link in GATEWAY_PORT',
      { ...BASE_ENV, GATEWAY_PORT: 'tcp://10.0.0.11:8080' },
      'GATEWAY_PORT (server.port) is "tcp://10.0.0.11:8080", a Kubernetes service link: set enableServiceLinks: false in the pod spec or rename the Service',
    ],
    [
      'a fractional timeout',
      { ...BASE_ENV, GATEWAY_UPSTREAM_TIMEOUT_MS: '1.5' },
      'GATEWAY_UPSTREAM_TIMEOUT_MS (upstream.timeoutMs) must be an integer >= 0, got "1.5"',
    ],
    [
      'a zero connection count',
      { ...BASE_ENV, GATEWAY_UPSTREAM_CONNECTIONS: '0' },
      'GATEWAY_UPSTREAM_CONNECTIONS (upstream.connections) must be an integer >= 1, got "0"',
    ],
    [
      'a bad boolean',
      { ...BASE_ENV, GATEWAY_TRUST_FORWARDED: 'maybe' },
      'GATEWAY_TRUST_FORWARDED (server.trustForwardedHeaders) must be true or false, got "maybe"',
    ],
    [
      'a bad enum',
      { ...BASE_ENV, GATEWAY_ANONYMOUS: 'sometimes' },
      'GATEWAY_ANONYMOUS (anonymous) must be one of allow, deny, got "sometimes"',
    ],
    [
      'a bad database-down policy',
      { ...BASE_ENV, GATEWAY_CLAIMS_ON_DB_DOWN: 'stale' },
      'GATEWAY_CLAIMS_ON_DB_DOWN (claims.onDatabaseDown) must be one of fail, token, got "stale"',
    ],
    [
      'a bad log level',
      { ...BASE_ENV, GATEWAY_LOG_LEVEL: 'verbose' },
      'GATEWAY_LOG_LEVEL (log.level) must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    ],
    [
      'a non-http upstream URL',
      { ...BASE_ENV, GATEWAY_UPSTREAM_URL: 'ftp://postgrest:3000' },
      'GATEWAY_UPSTREAM_URL (upstream.url) must be an http:// or https:// URL without query or fragment, got "ftp://postgrest:3000"',
    ],
    [
      'an upstream URL that is not a URL',
      { ...BASE_ENV, GATEWAY_UPSTREAM_URL: 'postgrest:3000' },
      'GATEWAY_UPSTREAM_URL (upstream.url) must be an http:// or https:// URL without query or fragment, got "postgrest:3000"',
    ],
    [
      'a JWKS URL with another scheme',
      { ...BASE_ENV, GATEWAY_JWKS_URL: 'file:///etc/jwks.json' },
      'GATEWAY_JWKS_URL (jwt.jwksUrl) must be an http:// or https:// URL without query or fragment, got "file:///etc/jwks.json"',
    ],
    [
      'a database URL that is not postgres (value not echoed)',
      { ...BASE_ENV, GATEWAY_DB_URL: 'mysql://root:hunter2@db/app' },
      'GATEWAY_DB_URL (db.url) must be a postgres:// or postgresql:// URL',
    ],
    [
      'a short upstream HS256 secret',
      { GATEWAY_UPSTREAM_JWT_SECRET: 'too-short-secret' },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is shorter than 32 characters: an HS256 secret needs at least 32 (or use a JWK)',
    ],
    [
      'a short inbound HS256 secret',
      { ...BASE_ENV, GATEWAY_JWT_SECRET: 'x'.repeat(31) },
      'GATEWAY_JWT_SECRET (jwt.secret) is shorter than 32 characters: an HS256 secret needs at least 32 (or use a JWK)',
    ],
    [
      'an inbound secret that looks like JSON but is not',
      { ...BASE_ENV, GATEWAY_JWT_SECRET: '{"kty":"oct",k:"secret-material"}' },
      'GATEWAY_JWT_SECRET (jwt.secret) starts with "{" but is not valid JSON (expected a JWK or a JWK Set)',
    ],
    [
      'a JSON upstream secret that is neither JWK nor JWKS',
      { GATEWAY_UPSTREAM_JWT_SECRET: '{"alg":"ES256","d":"secret-material"}' },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is JSON but neither a JWK (no "kty") nor a JWK Set (no "keys")',
    ],
    [
      'a JWK Set as the minting key',
      { GATEWAY_UPSTREAM_JWT_SECRET: '{"keys":[{"kty":"EC","d":"secret-material"}]}' },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is a JWK Set: tokens are signed with one private JWK',
    ],
    [
      'a base64 secret that is not base64',
      {
        GATEWAY_UPSTREAM_JWT_SECRET: 'not base64 at all!!'.repeat(3),
        GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64: 'true',
      },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is not valid base64, as GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64 (upstream.jwtSecretIsBase64) requires',
    ],
    [
      'a base64 secret that decodes to fewer than 32 bytes',
      {
        GATEWAY_UPSTREAM_JWT_SECRET: Buffer.alloc(31, 7).toString('base64'),
        GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64: 'true',
      },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) decodes to fewer than 32 bytes: an HS256 secret needs at least 32',
    ],
    [
      'a secret given both inline and as a file',
      { ...BASE_ENV, GATEWAY_UPSTREAM_JWT_SECRET_FILE: '/run/key' },
      'GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) and GATEWAY_UPSTREAM_JWT_SECRET_FILE are both set: set only one',
    ],
    [
      'a missing secret file',
      { GATEWAY_UPSTREAM_JWT_SECRET_FILE: '/run/missing' },
      'GATEWAY_UPSTREAM_JWT_SECRET_FILE (upstream.jwtSecret) cannot read /run/missing: ENOENT',
    ],
    [
      'a missing @file',
      { ...BASE_ENV, GATEWAY_JWT_SECRET: '@keys/jwks.json' },
      'GATEWAY_JWT_SECRET (jwt.secret) cannot read /srv/gateway/keys/jwks.json: ENOENT',
    ],
    [
      'a privileged role in the allow-list',
      { ...BASE_ENV, GATEWAY_ROLES_ALLOWED: 'authenticated,service_role' },
      'GATEWAY_ROLES_ALLOWED (role.allowed) lists the privileged role "service_role": set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended',
    ],
    [
      'a pg_* role in the allow-list',
      { ...BASE_ENV, GATEWAY_ROLES_ALLOWED: 'authenticated,pg_read_all_data' },
      'GATEWAY_ROLES_ALLOWED (role.allowed) lists the privileged role "pg_read_all_data": set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended',
    ],
    [
      'a privileged role in another case',
      { ...BASE_ENV, GATEWAY_ROLES_ALLOWED: 'authenticated,Postgres' },
      'GATEWAY_ROLES_ALLOWED (role.allowed) lists the privileged role "Postgres": set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended',
    ],
    [
      'a default role outside the allow-list',
      { ...BASE_ENV, GATEWAY_DEFAULT_ROLE: 'anon' },
      'GATEWAY_DEFAULT_ROLE (role.default) "anon" is not in GATEWAY_ROLES_ALLOWED (role.allowed)',
    ],
    [
      'an invalid role name in the allow-list',
      { ...BASE_ENV, GATEWAY_ROLES_ALLOWED: 'authenticated,web user' },
      'GATEWAY_ROLES_ALLOWED (role.allowed) has an invalid role name "web user" (non-empty, no whitespace, commas, colons or quotes, at most 63 bytes)',
    ],
    [
      'an empty allow-list',
      { ...BASE_ENV, GATEWAY_ROLES_ALLOWED: ' , ' },
      'GATEWAY_ROLES_ALLOWED (role.allowed) must list at least one role',
    ],
    [
      'an invalid default role name',
      { ...BASE_ENV, GATEWAY_DEFAULT_ROLE: 'a:b' },
      'GATEWAY_DEFAULT_ROLE (role.default) must be a role name (non-empty, no whitespace, commas, colons or quotes, at most 63 bytes), got "a:b"',
    ],
    [
      'a role map entry without a colon',
      { ...BASE_ENV, GATEWAY_ROLE_MAP: 'ADMIN:authenticated,MANAGER' },
      'GATEWAY_ROLE_MAP (role.map) entry "MANAGER" must be VALUE:role',
    ],
    [
      'a role map entry without a role',
      { ...BASE_ENV, GATEWAY_ROLE_MAP: 'MANAGER:' },
      'GATEWAY_ROLE_MAP (role.map) entry "MANAGER:" must be VALUE:role',
    ],
    [
      'a role map entry with an invalid role',
      { ...BASE_ENV, GATEWAY_ROLE_MAP: 'MANAGER:the manager' },
      'GATEWAY_ROLE_MAP (role.map) maps "MANAGER" to an invalid role name "the manager" (non-empty, no whitespace, commas, colons or quotes, at most 63 bytes)',
    ],
    [
      'a role map with a repeated value',
      { ...BASE_ENV, GATEWAY_ROLE_MAP: 'A:authenticated,A:authenticated' },
      'GATEWAY_ROLE_MAP (role.map) maps "A" twice',
    ],
    [
      'a role map target outside the allow-list',
      { ...BASE_ENV, GATEWAY_ROLE_MAP: 'MANAGER:manager' },
      'GATEWAY_ROLE_MAP (role.map) maps "MANAGER" to "manager", which is not in GATEWAY_ROLES_ALLOWED (role.allowed)',
    ],
    [
      'a role claim with an empty segment',
      { ...BASE_ENV, GATEWAY_ROLE_CLAIM: 'app_metadata..role' },
      'GATEWAY_ROLE_CLAIM (role.claim) must be a dotted claim path like app_metadata.role, got "app_metadata..role"',
    ],
    [
      'a role claim into the prototype',
      { ...BASE_ENV, GATEWAY_ROLE_CLAIM: '__proto__.role' },
      'GATEWAY_ROLE_CLAIM (role.claim) must be a dotted claim path like app_metadata.role, got "__proto__.role"',
    ],
    [
      'a hook URI with an unsupported scheme',
      { ...BASE_ENV, GATEWAY_HOOK_URI: 'ftp://hooks.example.com/x' },
      'GATEWAY_HOOK_URI (hook.uri) must be pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost, got "ftp://hooks.example.com/x"',
    ],
    [
      'a plain-http hook on another host',
      { ...BASE_ENV, GATEWAY_HOOK_URI: 'http://hooks.example.com/x', GATEWAY_HOOK_SECRETS: HOOK_SECRET },
      'GATEWAY_HOOK_URI (hook.uri) must be pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost, got "http://hooks.example.com/x"',
    ],
    [
      'a pg-functions hook with a bad function name',
      { ...BASE_ENV, GATEWAY_HOOK_URI: 'pg-functions://postgres/public/my-hook' },
      'GATEWAY_HOOK_URI (hook.uri) must be pg-functions://postgres/<schema>/<function>, an https:// URL, or http:// on localhost, got "pg-functions://postgres/public/my-hook"',
    ],
    [
      'a pg-functions hook without a database',
      { ...BASE_ENV, GATEWAY_HOOK_URI: 'pg-functions://postgres/public/custom_access_token_hook' },
      'GATEWAY_HOOK_URI (hook.uri) calls a Postgres function: it needs GATEWAY_DB_URL (db.url)',
    ],
    [
      'an HTTP hook without secrets',
      { ...BASE_ENV, GATEWAY_HOOK_URI: 'https://hooks.example.com/token' },
      'GATEWAY_HOOK_SECRETS (hook.secrets) is required for an HTTP hook: requests to it are signed (Standard Webhooks)',
    ],
    [
      'a malformed hook secret (value not echoed)',
      { ...BASE_ENV, GATEWAY_HOOK_SECRETS: `${HOOK_SECRET}|whsec_plainsecretvalue` },
      'GATEWAY_HOOK_SECRETS (hook.secrets) entry 2 must look like v1,whsec_<base64, 32 to 88 characters>',
    ],
    [
      'a user query without $1',
      { ...BASE_ENV, GATEWAY_DB_USER_QUERY: 'select * from auth.users' },
      'GATEWAY_DB_USER_QUERY (db.userQuery) must contain $1 (the user id)',
    ],
    [
      'a session query with only $10',
      { ...BASE_ENV, GATEWAY_DB_SESSION_QUERY: 'select 1 where $10' },
      'GATEWAY_DB_SESSION_QUERY (db.sessionQuery) must contain $1 (the session id), or be off',
    ],
    [
      'a notify channel that is not an identifier',
      { ...BASE_ENV, GATEWAY_DB_NOTIFY_CHANNEL: 'claims-changed' },
      'GATEWAY_DB_NOTIFY_CHANNEL (db.notifyChannel) must be a PostgreSQL identifier (letters, digits and _, at most 63), got "claims-changed"',
    ],
    [
      'an empty mint claim list',
      { ...BASE_ENV, GATEWAY_MINT_CLAIMS: ',' },
      'GATEWAY_MINT_CLAIMS (mint.claimsAllowed) must list at least one claim (leave it unset to forward all claims)',
    ],
    ['an unknown command-line argument', BASE_ENV, 'unknown argument "--port"; see --help'],
  ]

  for (const [what, env, message] of cases) {
    it(`refuses ${what}`, () => {
      expect(failure(env, {}, what.includes('command-line') ? ['--port', '80'] : [])).toBe(message)
    })
  }

  it('never puts a secret value into a message', () => {
    const secrets = ['hunter2', 'secret-material', 'plainsecretvalue', 'too-short-secret']
    for (const [, env] of cases) {
      let message = ''
      try {
        load(env)
      } catch (err) {
        message = (err as Error).message
      }
      for (const secret of secrets) expect(message).not.toContain(secret)
    }
  })

  it('accepts privileged roles with the explicit opt-in, and http hooks on loopback', () => {
    const config = load({
      ...BASE_ENV,
      GATEWAY_ROLES_ALLOWED: 'authenticated,service_role',
      GATEWAY_ALLOW_PRIVILEGED_ROLES: 'true',
      GATEWAY_HOOK_URI: 'http://127.0.0.1:54321/functions/v1/hook',
      GATEWAY_HOOK_SECRETS: `${HOOK_SECRET}|`,
    })
    expect(config.role.allowed).toEqual(new Set(['authenticated', 'service_role']))
    expect(config.hook.secrets).toEqual([HOOK_SECRET])
  })
})

describe('loadConfig YAML failures', () => {
  const file = (text: string) => failure({ GATEWAY_CONFIG: '/etc/gw.yaml' }, { '/etc/gw.yaml': text })

  it('names an unknown key with its path and a suggestion', () => {
    expect(file('server:\n  prot: 80\n')).toBe(
      'server.prot in /etc/gw.yaml is not an option (did you mean server.port?)',
    )
    expect(file('role:\n  defaultRole: authenticated\n')).toBe(
      'role.defaultRole in /etc/gw.yaml is not an option (did you mean role.default?)',
    )
    expect(file('port: 80\n')).toBe('port in /etc/gw.yaml is not an option (did you mean server.port?)')
    expect(file('metrics:\n  enabled: true\n')).toBe('metrics in /etc/gw.yaml is not an option')
  })

  it('names a section that is not a mapping', () => {
    expect(file('server: 8080\n')).toBe('server in /etc/gw.yaml must be a mapping of options')
    expect(file('- server\n')).toBe(
      '/etc/gw.yaml must be a YAML mapping of options (server:, upstream:, ...)',
    )
  })

  it('reports YAML syntax errors on one line', () => {
    expect(file('server:\n  port: 80\n  port: 81\n')).toBe(
      '/etc/gw.yaml is not valid YAML: Map keys must be unique at line 3, column 3',
    )
  })

  it('names YAML values by their YAML key and file', () => {
    expect(file(`upstream: {jwtSecret: "${SECRET}"}\nserver: {port: 80.5}\n`)).toBe(
      'server.port (GATEWAY_PORT) in /etc/gw.yaml must be an integer from 0 to 65535, got 80.5',
    )
    expect(file(`upstream: {jwtSecret: short}\n`)).toBe(
      'upstream.jwtSecret (GATEWAY_UPSTREAM_JWT_SECRET) in /etc/gw.yaml is shorter than 32 characters: an HS256 secret needs at least 32 (or use a JWK)',
    )
    expect(
      file(`upstream: {jwtSecret: "${SECRET}"}\nrole: {allowed: [authenticated, supabase_admin]}\n`),
    ).toBe(
      'role.allowed (GATEWAY_ROLES_ALLOWED) in /etc/gw.yaml lists the privileged role "supabase_admin": set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended',
    )
    expect(file(`upstream: {jwtSecret: "${SECRET}"}\nrole: {map: {A: [x]}}\n`)).toBe(
      'role.map (GATEWAY_ROLE_MAP) in /etc/gw.yaml must be VALUE:role pairs separated by commas, or a YAML mapping of VALUE: role, got {"A":["x"]}',
    )
  })

  it('reports a missing file, named by where it was given', () => {
    expect(failure({ GATEWAY_CONFIG: 'missing.yaml' })).toBe(
      'GATEWAY_CONFIG file /srv/gateway/missing.yaml cannot be read: ENOENT',
    )
    expect(failure({}, {}, ['--config', '/etc/missing.yaml'])).toBe(
      '--config file /etc/missing.yaml cannot be read: ENOENT',
    )
  })
})

describe('redactConfig', () => {
  it('replaces every secret and keeps the rest', () => {
    const config = load({
      ...BASE_ENV,
      GATEWAY_DB_URL: 'postgres://gateway:hunter2@db/postgres',
      GATEWAY_HOOK_URI: 'https://hooks.example.com/token',
      GATEWAY_HOOK_SECRETS: HOOK_SECRET,
    })
    const redacted = redactConfig(config)
    const text = JSON.stringify(redacted)
    expect(text).not.toContain(SECRET)
    expect(text).not.toContain('hunter2')
    expect(text).not.toContain(HOOK_SECRET)
    expect(redacted['upstream']).toEqual({ ...config.upstream, jwtSecret: '[set]' })
    expect(redacted['db']).toEqual({ ...config.db, url: '[set]' })
    expect(redacted['jwt']).toEqual({ ...config.jwt, secret: null })
    expect(redacted['hook']).toEqual({ ...config.hook, secrets: ['[set]'] })
    expect(redacted['role']).toEqual({ ...config.role, map: {}, allowed: ['authenticated'] })
  })
})
