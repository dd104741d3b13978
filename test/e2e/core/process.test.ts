// End to end, process entry: start-up refusals (exit 2, one stderr line naming the option), --help, --version and `jwks` of the built gateway.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { repoRoot } from '../../support/database.js'
import { runGatewayCommand, UPSTREAM_SECRET } from '../../support/e2e-stack.js'
import { generateKeyPairJwk } from '../../support/tokens.js'

const version = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string })
  .version

/** One line on stderr, nothing on stdout, exit code 2. */
function refusal(result: { code: number | null; stdout: string; stderr: string }): string {
  expect({ code: result.code, stdout: result.stdout }, result.stderr).toEqual({ code: 2, stdout: '' })
  expect(result.stderr.endsWith('\n')).toBe(true)
  expect(result.stderr.trimEnd().split('\n')).toHaveLength(1)
  return result.stderr
}

describe('the gateway process refuses a bad configuration at start', () => {
  test('a 10-character GATEWAY_UPSTREAM_JWT_SECRET: exit 2, one line naming it, the secret not echoed', async () => {
    const line = refusal(await runGatewayCommand([], { GATEWAY_UPSTREAM_JWT_SECRET: 'short-1234' }))
    expect(line).toBe(
      'postgrest-gateway: GATEWAY_UPSTREAM_JWT_SECRET (upstream.jwtSecret) is shorter than 32 characters: ' +
        'an HS256 secret needs at least 32 (or use a JWK)\n',
    )
    expect(line).not.toContain('short-1234')
  })

  test('no GATEWAY_UPSTREAM_JWT_SECRET at all: exit 2 naming it', async () => {
    const line = refusal(await runGatewayCommand([], {}))
    expect(line).toMatch(
      /^postgrest-gateway: GATEWAY_UPSTREAM_JWT_SECRET \(upstream\.jwtSecret\) is required/,
    )
  })

  test('service_role in GATEWAY_ROLES_ALLOWED without the override: exit 2 naming both options', async () => {
    const line = refusal(
      await runGatewayCommand([], {
        GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET,
        GATEWAY_ROLES_ALLOWED: 'authenticated,service_role',
      }),
    )
    expect(line).toBe(
      'postgrest-gateway: GATEWAY_ROLES_ALLOWED (role.allowed) lists the privileged role "service_role": ' +
        'set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended\n',
    )
  })

  test('a misspelt variable is refused, not ignored', async () => {
    const line = refusal(
      await runGatewayCommand([], { GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET, GATEWAY_ANONYMOS: 'deny' }),
    )
    expect(line).toMatch(/^postgrest-gateway: GATEWAY_ANONYMOS .*GATEWAY_ANONYMOUS/)
  })

  test('an unknown argument: exit 2', async () => {
    const line = refusal(
      await runGatewayCommand(['--frobnicate'], { GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET }),
    )
    expect(line).toBe('postgrest-gateway: unknown argument "--frobnicate"; see --help\n')
  })
})

describe('commands', () => {
  test('--help prints the usage and exits 0 without any configuration', async () => {
    const result = await runGatewayCommand(['--help'], {})
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' })
    expect(result.stdout).toMatch(/^Usage: postgrest-gateway \[command\] \[--config <path>\]\n/)
    expect(result.stdout).toContain('GATEWAY_UPSTREAM_JWT_SECRET')
  })

  test('--version prints the package version and exits 0', async () => {
    expect(await runGatewayCommand(['--version'], {})).toEqual({
      code: 0,
      signal: null,
      stdout: `${version}\n`,
      stderr: '',
    })
  })

  test('jwks prints the public JWKS of a private JWK, and nothing private', async () => {
    const pair = generateKeyPairJwk('ES256', { kid: 'gateway-2025' })
    const result = await runGatewayCommand(['jwks'], {
      GATEWAY_UPSTREAM_JWT_SECRET: JSON.stringify(pair.privateJwk),
    })
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' })
    expect(result.stdout.endsWith('\n')).toBe(true)
    const { x, y, crv, kty } = pair.publicJwk
    expect(JSON.parse(result.stdout)).toEqual({
      keys: [{ kty, crv, x, y, kid: 'gateway-2025', alg: 'ES256', use: 'sig' }],
    })
    expect(result.stdout).not.toContain(String(pair.privateJwk.d))
  })

  test('jwks with a shared HS256 secret: exit 2, it has no public half', async () => {
    const line = refusal(await runGatewayCommand(['jwks'], { GATEWAY_UPSTREAM_JWT_SECRET: UPSTREAM_SECRET }))
    expect(line).toBe(
      'postgrest-gateway: jwks: GATEWAY_UPSTREAM_JWT_SECRET is a shared HS256 secret: give PostgREST the same secret\n',
    )
    expect(line).not.toContain(UPSTREAM_SECRET)
  })
})
