// The load bench's pairing: each target's drive against the bare proxy's drives around it.
import type { ChildProcess } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import {
  comparable,
  type Flanked,
  type Round,
  roundTargets,
  STEADY_HOST,
  steadyAcross,
  type Target,
  unsteadiness,
  versusBare,
} from '../../../bench/load.js'

function drive(rps: number, cpuUs: number, p99 = 40): Round {
  return { rps, cpuUs, p50: 20, p99, firstP50: 80, failures: 0 }
}

function flanked(x: Round, before: Round, after: Round): Flanked {
  return { x, before, after }
}

const target = (name: string): Target => ({ name, port: 0, child: {} as ChildProcess })

describe('steadyAcross', () => {
  it('holds while the two bare drives agree within STEADY_HOST in rate and in CPU', () => {
    expect(STEADY_HOST).toBe(0.1)
    // 10,000 and 10,500: 4.9% of their mean apart; 100 and 109 us: 8.6%.
    expect(steadyAcross(flanked(drive(9_000, 120), drive(10_000, 100), drive(10_500, 109)))).toBe(true)
  })

  it('fails when the host changed speed between them, in rate or in CPU', () => {
    // 7,000 and 12,000 req/s: the host's slow and fast spells on this machine.
    expect(steadyAcross(flanked(drive(9_000, 100), drive(7_000, 100), drive(12_000, 100)))).toBe(false)
    // Same rate, CPU 80 and 130 us.
    expect(steadyAcross(flanked(drive(9_000, 100), drive(10_000, 80), drive(10_000, 130)))).toBe(false)
    // Just past the bound: 100 and 111 us are 10.4% of their mean apart.
    expect(steadyAcross(flanked(drive(9_000, 100), drive(10_000, 100), drive(10_000, 111)))).toBe(false)
  })
})

describe('comparable', () => {
  const steady = flanked(drive(9_000, 110), drive(10_000, 100), drive(10_000, 100))
  // Bare drives 4.9% apart in rate and 9.5% in CPU.
  const nearly = flanked(drive(9_000, 110), drive(10_000, 100), drive(10_500, 110))
  // 12,000 and 7,000 req/s: the host's fast and slow spells.
  const changed = flanked(drive(6_000, 170), drive(12_000, 75), drive(7_000, 130))
  // 20% apart in rate, 13% in CPU.
  const drifted = flanked(drive(8_000, 120), drive(10_000, 100), drive(12_222, 114))

  it('measures how far apart the two bare drives are, in rate or CPU, whichever is larger', () => {
    expect(unsteadiness(steady)).toBe(0)
    expect(unsteadiness(nearly)).toBeCloseTo(10 / 105, 10)
    expect(unsteadiness(changed)).toBeCloseTo(55 / 102.5, 10)
    expect(unsteadiness(drifted)).toBeCloseTo(2_222 / 11_111, 10)
  })

  it('keeps the drives the host was steady across, in their order', () => {
    expect(comparable([steady, changed, nearly])).toEqual([steady, nearly])
    expect(comparable([steady, changed])).toEqual([steady])
  })

  it('keeps at least the steadier half when fewer were steady', () => {
    const changedAgain = { ...changed }
    const driftedAgain = { ...drifted }
    // One steady drive of five: the three steadiest.
    const five = [changed, steady, drifted, changedAgain, driftedAgain]
    expect(comparable(five)).toEqual([steady, drifted, driftedAgain])
    expect(comparable(five)[1]).toBe(drifted)
    // None steady of three: the two steadiest.
    const three = comparable([changed, drifted, changedAgain])
    expect(three).toHaveLength(2)
    expect(three[0]).toBe(changed)
    expect(three[1]).toBe(drifted)
  })
})

describe('versusBare', () => {
  it('takes the median over drives of the target against the mean of its two bare drives', () => {
    const drives = [
      flanked(drive(9_000, 110, 45), drive(10_000, 100, 40), drive(10_000, 100, 42)),
      flanked(drive(12_000, 90, 30), drive(11_000, 100, 35), drive(13_000, 80, 33)),
      flanked(drive(8_000, 150, 60), drive(10_000, 120, 50), drive(10_000, 130, 50)),
    ]
    // Rates against the bare mean: 0.9, 1.0, 0.8; median 0.9.
    expect(versusBare(drives, (a, b) => a / b, 'rps')).toBeCloseTo(0.9, 10)
    // CPU: 1.1, 1.0, 1.2; median 1.1.
    expect(versusBare(drives, (a, b) => a / b, 'cpuUs')).toBeCloseTo(1.1, 10)
    // p99 differences: +4, -4, +10 ms; median +4.
    expect(versusBare(drives, (a, b) => a - b, 'p99')).toBe(4)
  })
})

describe('roundTargets', () => {
  const on = target('gateway, claims on')
  const off = target('gateway, claims off')
  const fastify = target('fastify + jwt + reply-from')

  it('swaps the gateways every round and runs the others every round by default', () => {
    expect(roundTargets([on, off], [fastify], 0)).toEqual([on, off, fastify])
    expect(roundTargets([on, off], [fastify], 1)).toEqual([off, on, fastify])
    expect(roundTargets([on, off], [fastify], 2)).toEqual([on, off, fastify])
  })

  it('runs the others in every n-th round', () => {
    expect(roundTargets([on, off], [fastify], 0, 2)).toEqual([on, off, fastify])
    expect(roundTargets([on, off], [fastify], 1, 2)).toEqual([off, on])
    expect(roundTargets([on, off], [fastify], 2, 2)).toEqual([on, off, fastify])
    expect(roundTargets([on, off], [fastify], 3, 2)).toEqual([off, on])
  })
})
