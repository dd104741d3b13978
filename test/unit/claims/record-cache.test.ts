// Unit: the claims cache's time rules (fresh, stale-while-revalidate, revalidate after a drop, maxStale).
import { describe, expect, it } from 'vitest'
import { RecordCache, type RecordCacheEvent } from '../../../src/claims/record-cache.js'

interface Deferred {
  resolve(value: string): void
  reject(err: Error): void
}

/** A cache whose loads are resolved by hand, on a clock the test moves. */
function setup(options: { freshMs?: number; maxStaleMs?: number } = {}) {
  let clock = 1_000_000
  const loads: Array<{ key: string } & Deferred> = []
  const events: RecordCacheEvent[] = []
  const cache = new RecordCache<string>({
    max: 100,
    maxStaleMs: options.maxStaleMs ?? 300_000,
    freshMs: () => options.freshMs ?? 60_000,
    now: () => clock,
    onEvent: (event) => events.push(event),
    load: (key) =>
      new Promise<string>((resolve, reject) => {
        loads.push({ key, resolve, reject })
      }),
  })
  return {
    cache,
    loads,
    events,
    get now() {
      return clock
    },
    advance(ms: number) {
      clock += ms
    },
  }
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

describe('RecordCache', () => {
  it('loads a miss once for any number of concurrent callers, then answers synchronously', async () => {
    const t = setup()
    const a = t.cache.get('u', t.now)
    const b = t.cache.get('u', t.now)
    expect(a).toBeInstanceOf(Promise)
    expect(b).toBe(a)
    expect(t.loads).toHaveLength(1)
    t.loads[0]?.resolve('v1')
    await expect(a).resolves.toBe('v1')
    expect(t.cache.get('u', t.now)).toBe('v1')
    expect(t.events).toEqual(['miss', 'miss', 'hit'])
  })

  it('serves a value past its window while one background refresh runs', async () => {
    const t = setup()
    const first = t.cache.get('u', t.now)
    t.loads[0]?.resolve('v1')
    await first
    t.advance(60_000)
    expect(t.cache.get('u', t.now)).toBe('v1')
    expect(t.cache.get('u', t.now)).toBe('v1')
    expect(t.loads).toHaveLength(2)
    t.loads[1]?.resolve('v2')
    await settle()
    expect(t.cache.get('u', t.now)).toBe('v2')
    expect(t.events).toEqual(['miss', 'stale', 'stale', 'hit'])
  })

  it('stops serving a stale value after maxStale and fails when the database cannot answer', async () => {
    const t = setup({ maxStaleMs: 10_000 })
    const first = t.cache.get('u', t.now)
    t.loads[0]?.resolve('v1')
    await first
    t.advance(60_000 + 10_000)
    expect(t.cache.get('u', t.now)).toBe('v1')
    t.loads[1]?.reject(new Error('down'))
    await settle()
    expect(t.cache.failing).toBe(true)
    t.advance(1)
    const late = t.cache.get('u', t.now)
    expect(late).toBeInstanceOf(Promise)
    t.loads[2]?.reject(new Error('down'))
    await expect(late).rejects.toThrow('down')
  })

  it('revalidates every entry after expireAll, and falls back to it only while the database fails', async () => {
    const t = setup()
    const first = t.cache.get('u', t.now)
    t.loads[0]?.resolve('v1')
    await first
    t.cache.expireAll()
    const revalidated = t.cache.get('u', t.now)
    expect(revalidated).toBeInstanceOf(Promise)
    t.loads[1]?.reject(new Error('down'))
    await expect(revalidated).resolves.toBe('v1')
    // The database is known to fail: the old value is served at once, with one probe in flight.
    t.advance(1_000)
    expect(t.cache.get('u', t.now)).toBe('v1')
    expect(t.loads).toHaveLength(3)
    t.loads[2]?.resolve('v2')
    await settle()
    expect(t.cache.get('u', t.now)).toBe('v2')
  })

  it('does not serve an entry made stale by a drop longer than maxStale after the drop', async () => {
    const t = setup({ maxStaleMs: 5_000 })
    const first = t.cache.get('u', t.now)
    t.loads[0]?.resolve('v1')
    await first
    t.cache.expireAll()
    t.advance(5_001)
    const answer = t.cache.get('u', t.now)
    t.loads[1]?.reject(new Error('down'))
    await expect(answer).rejects.toThrow('down')
  })

  it('does not cache a load that an eviction overtook, and starts a new one for later callers', async () => {
    const t = setup()
    const before = t.cache.get('u', t.now)
    t.cache.evict('u')
    const after = t.cache.get('u', t.now)
    expect(after).not.toBe(before)
    expect(t.loads).toHaveLength(2)
    t.loads[0]?.resolve('old')
    t.loads[1]?.resolve('new')
    await expect(before).resolves.toBe('old')
    await expect(after).resolves.toBe('new')
    expect(t.cache.get('u', t.now)).toBe('new')
  })

  it('never caches the answer of a load that was in flight when everything expired', async () => {
    const t = setup()
    const inFlight = t.cache.get('u', t.now)
    t.cache.expireAll()
    t.loads[0]?.resolve('maybe-old')
    await expect(inFlight).resolves.toBe('maybe-old')
    expect(t.cache.get('u', t.now)).toBeInstanceOf(Promise)
  })

  it('an evicted entry is no fallback when the database fails', async () => {
    const t = setup()
    const first = t.cache.get('u', t.now)
    t.loads[0]?.resolve('v1')
    await first
    t.cache.evict('u')
    const answer = t.cache.get('u', t.now)
    t.loads[1]?.reject(new Error('down'))
    await expect(answer).rejects.toThrow('down')
  })
})
