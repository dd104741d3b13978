// Deployment: the local compose stack wires PostgreSQL, PostgREST and the gateway the way the gateway expects.
import { join, normalize, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { type Doc, defaultOf, ENV_CONTRACT, exists, LOADER_NAMES, ROOT, readYaml } from './support.js'

const FILE = 'config/compose/compose.yaml'
const compose = readYaml(FILE)[0]
const { postgres, postgrest, gateway } = compose.services as Record<string, Doc>

/** A path in the compose file, relative to the repository root (compose resolves against its folder). */
function fromRoot(path: string): string {
  return relative(ROOT, normalize(join(ROOT, 'config/compose', path)))
}

function published(service: Doc): { host: string; container: number }[] {
  return service.ports.map((p: string) => {
    const [ip, host, container] = p.split(':')
    return { host: `${ip}:${host}`, container: Number(container) }
  })
}

describe('compose stack', () => {
  it('has exactly the database, PostgREST and the gateway', () => {
    expect(Object.keys(compose.services)).toEqual(['postgres', 'postgrest', 'gateway'])
  })

  it('gives the gateway only environment names from the public contract that the loader accepts', () => {
    const names = Object.keys(gateway.environment)
    expect(names.filter((n) => !ENV_CONTRACT.has(n))).toEqual([])
    expect(names.filter((n) => !LOADER_NAMES.has(n))).toEqual([])
  })

  it('publishes the gateway ports it listens on, on the loopback interface of the host', () => {
    const env = gateway.environment
    expect(Number(env.GATEWAY_PORT ?? defaultOf('GATEWAY_PORT'))).toBe(8080)
    expect(Number(env.GATEWAY_ADMIN_PORT ?? defaultOf('GATEWAY_ADMIN_PORT'))).toBe(8081)
    expect(published(gateway)).toEqual([
      { host: '127.0.0.1:8080', container: 8080 },
      { host: '127.0.0.1:8081', container: 8081 },
    ])
    // Nothing reaches PostgREST from the host except through the gateway.
    expect(postgrest.ports).toBeUndefined()
  })

  it('forwards to PostgREST on its service name and port', () => {
    const upstream = new URL(gateway.environment.GATEWAY_UPSTREAM_URL)
    expect(upstream.hostname).toBe('postgrest')
    expect(upstream.port).toBe(postgrest.environment.PGRST_SERVER_PORT)
  })

  it('signs minted tokens with the key PostgREST verifies, at least 32 characters', () => {
    const secret = gateway.environment.GATEWAY_UPSTREAM_JWT_SECRET
    expect(postgrest.environment.PGRST_JWT_SECRET).toBe(secret)
    expect(secret.length).toBeGreaterThanOrEqual(32)
    expect(postgrest.image).toMatch(/^postgrest\/postgrest:v14\.\d+$/)
    expect(postgrest.environment.PGRST_DB_ANON_ROLE).toBe('anon')
  })

  it('points both database clients at the postgres service', () => {
    expect(new URL(gateway.environment.GATEWAY_DB_URL).host).toBe('postgres:5432')
    expect(new URL(postgrest.environment.PGRST_DB_URI).host).toBe('postgres:5432')
  })

  it('loads the auth schema, the triggers and the demo data in that order on first start', () => {
    const init = (postgres.volumes as string[])
      .map((v) => v.split(':'))
      .filter(([, target]) => target?.startsWith('/docker-entrypoint-initdb.d/'))
      .map(([source, target, mode]) => [fromRoot(source!), target, mode])
      .sort((a, b) => a[1]!.localeCompare(b[1]!))
    expect(init).toEqual([
      ['sql/demo/supabase-auth.sql', '/docker-entrypoint-initdb.d/10-supabase-auth.sql', 'ro'],
      ['sql/install.sql', '/docker-entrypoint-initdb.d/20-install.sql', 'ro'],
      ['sql/demo/demo-data.sql', '/docker-entrypoint-initdb.d/30-demo-data.sql', 'ro'],
      [
        'config/compose/initdb/90-compose-roles.sql',
        '/docker-entrypoint-initdb.d/90-compose-roles.sql',
        'ro',
      ],
    ])
    expect(exists('config/compose/initdb/90-compose-roles.sql')).toBe(true)
    expect(exists('sql/install.sql')).toBe(true)
  })

  it('starts each service after the ones it needs are healthy, and each of those has a healthcheck', () => {
    expect(postgrest.depends_on).toEqual({ postgres: { condition: 'service_healthy' } })
    expect(gateway.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      postgrest: { condition: 'service_healthy' },
    })
    for (const service of [postgres, postgrest, gateway]) expect(service.healthcheck.test[0]).toBe('CMD')
    expect(postgrest.healthcheck.test).toEqual(['CMD', 'postgrest', '--ready'])
    // TCP, not the socket: the entrypoint's init server listens on the socket only.
    expect(postgres.healthcheck.test).toContain('127.0.0.1')
  })

  it('reports the gateway healthy when its admin /ready answers', () => {
    const script = gateway.healthcheck.test.at(-1) as string
    expect(gateway.healthcheck.test.slice(0, 3)).toEqual(['CMD', 'node', '-e'])
    expect(script).toContain(`http://127.0.0.1:${gateway.environment.GATEWAY_ADMIN_PORT}/ready`)
  })

  it('builds the gateway from the repository Dockerfile', () => {
    expect(fromRoot(gateway.build.context)).toBe('')
    expect(gateway.build.dockerfile).toBe('Dockerfile')
    expect(exists(gateway.build.dockerfile)).toBe(true)
  })

  it('waits longer than the shutdown delay plus the drain deadline before killing the gateway', () => {
    const env = gateway.environment
    const total =
      Number(env.GATEWAY_SHUTDOWN_DELAY_MS ?? defaultOf('GATEWAY_SHUTDOWN_DELAY_MS')) +
      Number(env.GATEWAY_SHUTDOWN_DEADLINE_MS ?? defaultOf('GATEWAY_SHUTDOWN_DEADLINE_MS'))
    const grace = /^(\d+)s$/.exec(gateway.stop_grace_period)
    expect(grace).not.toBeNull()
    expect(Number(grace![1]) * 1000).toBeGreaterThan(total)
  })
})
