// Request ids: the generated ones are RFC 9562 UUIDs (version 8), distinct, and differ between generators.
import { describe, expect, it } from 'vitest'
import { createRequestIds, isAcceptableRequestId } from '../../../src/request-id.js'

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('request ids', () => {
  it('are version-8 UUIDs, each one new, counting up within a generator', () => {
    const next = createRequestIds()
    const ids = Array.from({ length: 10_000 }, next)
    for (const id of ids) expect(id).toMatch(UUID_V8)
    expect(new Set(ids).size).toBe(10_000)
    expect(ids[0]!.slice(24)).toBe('000000000001')
    expect(ids[9_999]!.slice(24)).toBe('000000002710')
    expect(new Set(ids.map((id) => id.slice(0, 24))).size).toBe(1)
  })

  it('count on across every 65,536 ids, where the formatted upper part of the counter changes', () => {
    const next = createRequestIds()
    const ids = Array.from({ length: 0x20002 }, next)
    expect(ids[0xfffe]!.slice(24)).toBe('00000000ffff')
    expect(ids[0xffff]!.slice(24)).toBe('000000010000')
    expect(ids[0x10000]!.slice(24)).toBe('000000010001')
    expect(ids[0x20001]!.slice(24)).toBe('000000020002')
    for (const id of [ids[0xffff]!, ids[0x20001]!]) expect(id).toMatch(UUID_V8)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('start from a random prefix in every generator (every process)', () => {
    const prefixes = new Set(Array.from({ length: 50 }, () => createRequestIds()().slice(0, 24)))
    expect(prefixes.size).toBe(50)
  })

  it("keep a client's id only when it is visible ASCII of at most 200 characters", () => {
    expect(isAcceptableRequestId('ops-first')).toBe(true)
    expect(isAcceptableRequestId('x'.repeat(200))).toBe(true)
    expect(isAcceptableRequestId('x'.repeat(201))).toBe(false)
    expect(isAcceptableRequestId('')).toBe(false)
    expect(isAcceptableRequestId('has space')).toBe(false)
    expect(isAcceptableRequestId('caf\u00e9')).toBe(false)
    expect(isAcceptableRequestId('tab\there')).toBe(false)
  })
})
