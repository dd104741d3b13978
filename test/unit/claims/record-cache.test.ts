// Unit: the claims cache's time rules (fresh, stale-while-revalidate, revalidate after a drop, maxStale).
import { describe, expect, it } from 'vitest'
import { RecordCache, type RecordCacheEvent } from '../../../src/claims/record-cache.js'

interface Deferred {
  resolve(value: string): void
  reject(err: Error): void
}

/** A cache whose loads are resolved by hand, on a clock the test moves. */
function setup(options: { freshMs?: number; maxStaleMs?: number; max?: number } = {}) {
  let clock = 1_000_000
  const loads: Array<{ key: string } & Deferred> = []
  const events: RecordCacheEvent[] = []
  const cache = new RecordCache<string>({
    max: options.max ?? 100,
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

  describe('an entry kept beside its key (the hot path without the LRU)', () => {
    /** Loads `key` with `value` and returns the entry to keep. */
    async function loaded(t: ReturnType<typeof setup>, key: string, value: string): Promise<object> {
      const pending = t.cache.get(key, t.now)
      t.loads.at(-1)?.resolve(value)
      await pending
      const entry = t.cache.entryOf(key)
      expect(entry).toBeDefined()
      return entry!
    }

    it('answers as a hit while the entry is fresh, and not from the first moment it is not', async () => {
      const t = setup({ freshMs: 60_000 })
      const entry = await loaded(t, 'u', 'v1')
      t.events.length = 0
      expect(t.cache.kept(entry, t.now)).toBe('v1')
      t.advance(59_999)
      expect(t.cache.kept(entry, t.now)).toBe('v1')
      t.advance(1)
      expect(t.cache.kept(entry, t.now)).toBeUndefined()
      expect(t.events).toEqual(['hit', 'hit'])
      // `get` then serves it stale and reloads; the reload replaces the entry, which stays unheard.
      expect(t.cache.get('u', t.now)).toBe('v1')
      t.loads.at(-1)?.resolve('v2')
      await settle()
      t.advance(-1)
      expect(t.cache.kept(entry, t.now)).toBeUndefined()
      expect(t.cache.kept(t.cache.entryOf('u'), t.now)).toBe('v2')
    })

    it('stops answering once its key is invalidated, everything expires, or the cache is cleared', async () => {
      const t = setup()
      const evicted = await loaded(t, 'a', 'va')
      t.cache.evict('a')
      expect(t.cache.kept(evicted, t.now)).toBeUndefined()

      const expired = await loaded(t, 'b', 'vb')
      t.cache.expireAll()
      expect(t.cache.kept(expired, t.now)).toBeUndefined()
      // Revalidated first, as `get` would: a miss, not the old value.
      expect(t.cache.get('b', t.now)).toBeInstanceOf(Promise)

      const cleared = await loaded(t, 'c', 'vc')
      t.cache.clear()
      expect(t.cache.kept(cleared, t.now)).toBeUndefined()
    })

    it('stops answering once its entry is dropped for room', async () => {
      const t = setup({ max: 2 })
      const first = await loaded(t, 'a', 'va')
      await loaded(t, 'b', 'vb')
      expect(t.cache.kept(first, t.now)).toBe('va')
      await loaded(t, 'c', 'vc')
      expect(t.cache.entryOf('a')).toBeUndefined()
      expect(t.cache.kept(first, t.now)).toBeUndefined()
    })

    it('is honoured only by its own cache, and anything else is no entry', async () => {
      const t = setup()
      const other = setup()
      const entry = await loaded(t, 'u', 'v1')
      await loaded(other, 'u', 'v1')
      expect(other.cache.kept(entry, other.now)).toBeUndefined()
      expect(t.cache.kept(undefined, t.now)).toBeUndefined()
      expect(t.cache.kept({ value: 'forged', expiresAt: Number.POSITIVE_INFINITY }, t.now)).toBeUndefined()
      expect(t.cache.kept(entry, t.now)).toBe('v1')
    })
  })
})
