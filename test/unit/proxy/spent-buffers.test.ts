import { describe, expect, it } from 'vitest'
import { SPENT_LIMIT, SpentBuffers } from '../../../src/proxy/spent-buffers.js'

const KB = 1024
const MB = 1024 * KB

describe('SpentBuffers', () => {
  it('asks for one collection each time the body bytes passed reach the limit', () => {
    let calls = 0
    const spent = new SpentBuffers(100, () => {
      calls++
    })
    spent.passed(60)
    spent.passed(39)
    expect([calls, spent.collections]).toEqual([0, 0])
    spent.passed(1)
    expect([calls, spent.collections]).toEqual([1, 1])
    // The count starts again from zero after a collection.
    spent.passed(99)
    expect(calls).toBe(1)
    spent.passed(250)
    expect([calls, spent.collections]).toEqual([2, 2])
  })

  it('counts and collects nothing where V8 gives no collector', () => {
    const spent = new SpentBuffers(100, null)
    spent.passed(1000)
    expect(spent.collections).toBe(0)
  })

  it('defaults to a 16 MB limit', () => {
    expect(SPENT_LIMIT).toBe(16 * MB)
  })

  it("frees the memory of spent Buffers with V8's young-generation collection, without a global gc", () => {
    const spent = new SpentBuffers(64 * KB)
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined')
    // 100 chunks of 64 KB, each with its own memory as a socket read has: live, then spent.
    let chunks: Buffer[] | null = []
    for (let i = 0; i < 100; i++) chunks.push(Buffer.allocUnsafeSlow(64 * KB).fill(i))
    const held = process.memoryUsage().arrayBuffers
    chunks = null
    spent.passed(64 * KB)
    const after = process.memoryUsage().arrayBuffers
    expect(spent.collections).toBe(1)
    expect(held - after).toBeGreaterThanOrEqual(6 * MB)
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined')
  })
})
