import { describe, expect, it } from 'vitest'
import type { RoleConfig } from '../../../src/config/types.js'
import { GatewayError } from '../../../src/errors/index.js'
import { createMetrics } from '../../../src/observability/metrics.js'
import { createRoleMapper } from '../../../src/role/index.js'

function roleConfig(overrides: Partial<RoleConfig> = {}): RoleConfig {
  return {
    claim: 'app_metadata.role',
    claimPath: ['app_metadata', 'role'],
    map: new Map([['MANAGER', 'manager']]),
    allowed: new Set(['authenticated', 'manager', 'staff']),
    defaultRole: 'authenticated',
    anonRole: 'anon',
    allowPrivileged: false,
    ...overrides,
  }
}

function refusal(fn: () => unknown): GatewayError {
  try {
    fn()
  } catch (err) {
    if (err instanceof GatewayError) return err
    throw err
  }
  throw new Error('expected a refusal')
}

describe('mapRole', () => {
  const mapper = createRoleMapper(roleConfig())

  it('reads the role from the fresh app_metadata, not from the token', () => {
    const token = { sub: 'u', role: 'authenticated', app_metadata: { role: 'staff' } }
    expect(mapper.mapRole(token, { appMetadata: { role: 'manager' }, role: 'authenticated' })).toBe('manager')
  })

  it('maps claim values through the table', () => {
    expect(mapper.mapRole({ app_metadata: { role: 'MANAGER' } }, null)).toBe('manager')
  })

  it('falls back to the user role column, then the token role, then the default', () => {
    expect(mapper.mapRole({ role: 'staff' }, { appMetadata: {}, role: 'manager' })).toBe('manager')
    expect(mapper.mapRole({ role: 'staff' }, { appMetadata: {}, role: null })).toBe('staff')
    expect(mapper.mapRole({}, null)).toBe('authenticated')
  })

  it('refuses a role outside the allow-list with 403 GW201 and counts it', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const counted = createRoleMapper(roleConfig(), metrics)
    const err = refusal(() => counted.mapRole({}, { appMetadata: { role: 'service_role' }, role: null }))
    expect(err.kind).toBe('RoleNotAllowed')
    expect(err.status).toBe(403)
    expect(err.code).toBe('GW201')
    expect(refusal(() => counted.mapRole({ role: 'postgres' }, null)).kind).toBe('RoleNotAllowed')
    expect((await metrics.roleRefusals.get()).values[0]?.value).toBe(2)
  })

  it('refuses non-string role values instead of JSON-encoding them', () => {
    expect(refusal(() => mapper.mapRole({ role: { name: 'manager' } }, null)).kind).toBe('RoleNotAllowed')
    expect(refusal(() => mapper.mapRole({ role: 1 }, { appMetadata: {}, role: null })).kind).toBe(
      'RoleNotAllowed',
    )
    expect(refusal(() => mapper.mapRole({ app_metadata: { role: ['manager'] } }, null)).kind).toBe(
      'RoleNotAllowed',
    )
    expect(refusal(() => mapper.mapRole({ app_metadata: { role: 7 } }, null)).kind).toBe('RoleNotAllowed')
  })

  it('never reads a role from user_metadata, even when it looks like one', () => {
    const token = { user_metadata: { role: 'manager' }, app_metadata: {}, role: 'authenticated' }
    expect(mapper.mapRole(token, { appMetadata: {}, role: null })).toBe('authenticated')
    expect(() =>
      createRoleMapper(roleConfig({ claim: 'user_metadata.role', claimPath: ['user_metadata', 'role'] })),
    ).toThrow('GATEWAY_ROLE_CLAIM (role.claim) must not read user_metadata: users can write it')
  })

  it('ignores inherited properties on the claim path', () => {
    const mapperOnToString = createRoleMapper(roleConfig({ claim: 'toString', claimPath: ['toString'] }))
    expect(mapperOnToString.mapRole({}, null)).toBe('authenticated')
  })
})
