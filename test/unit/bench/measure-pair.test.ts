// Unit: the micro benchmarks' paired slices (a target and its baseline measured in alternation).
import { describe, expect, it } from 'vitest'
import { measurePair, sliceOrder } from '../../../bench/measure.js'

describe('measurePair', () => {
  it('alternates which of the two runs first, so each leads in half the slices', () => {
    const orders = Array.from({ length: 10 }, (_, s) => sliceOrder(s))
    expect(orders.filter((o) => o[0] === 0)).toHaveLength(5)
    expect(orders.slice(0, 3)).toEqual([
      [0, 1],
      [1, 0],
      [0, 1],
    ])
  })

  it('calls each function with its own running index, in every slice, after a warm-up of each', () => {
    const seenA: number[] = []
    const seenB: number[] = []
    const p = measurePair(
      (i) => seenA.push(i),
      (i) => seenB.push(i),
      { warmupMs: 2, timeMs: 20, slices: 4 },
    )
    // Indices continue from one slice to the next: no input is repeated out of turn.
    expect(seenA).toEqual(seenA.map((_, k) => k))
    expect(seenB).toEqual(seenB.map((_, k) => k))
    expect(p.a.nsPerOp).toBeGreaterThan(0)
    expect(p.b.nsPerOp).toBeGreaterThan(0)
    expect(p.a.opsPerSec).toBeCloseTo(1e9 / p.a.nsPerOp, 6)
    expect(p.ratio).toBeGreaterThan(0)
  })
})
