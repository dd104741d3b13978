// Benchmarks: the timing loop (warm-up, then timed batches; the median of several samples).

export interface Timing {
  readonly nsPerOp: number
  readonly opsPerSec: number
}

export interface MeasureOptions {
  readonly warmupMs: number
  /** Total timed duration, split into `samples` samples; the median sample is reported. */
  readonly timeMs: number
  readonly samples?: number
}

/** Kept reachable so that the measured calls cannot be optimised away. */
export let sink: unknown = null

const BATCH = 64

function runFor(fn: (i: number) => unknown, ms: number, start: number): { ops: number; ns: number } {
  let ops = 0
  let i = start
  const t0 = process.hrtime.bigint()
  const limit = BigInt(Math.round(ms * 1e6))
  let elapsed = 0n
  do {
    for (let b = 0; b < BATCH; b++) sink = fn(i++)
    ops += BATCH
    elapsed = process.hrtime.bigint() - t0
  } while (elapsed < limit)
  return { ops, ns: Number(elapsed) }
}

/** Calls `fn(i)` with i = 0, 1, 2, ... in one synchronous loop on one core. */
export function measure(fn: (i: number) => unknown, options: MeasureOptions): Timing {
  const samples = options.samples ?? 5
  let i = runFor(fn, options.warmupMs, 0).ops
  const perOp: number[] = []
  for (let s = 0; s < samples; s++) {
    const r = runFor(fn, options.timeMs / samples, i)
    i += r.ops
    perOp.push(r.ns / r.ops)
  }
  perOp.sort((a, b) => a - b)
  const ns = perOp[Math.floor(samples / 2)] ?? 0
  return { nsPerOp: ns, opsPerSec: 1e9 / ns }
}

/** Timings of two functions measured in alternating slices, and their ratio slice by slice. */
export interface PairTiming {
  readonly a: Timing
  readonly b: Timing
  /** The median over the slices of `b`'s time per call divided by `a`'s in the same slice. */
  readonly ratio: number
}

/** Which of the pair runs first in slice `s`: a, b, then b, a, ... so each leads equally often. */
export function sliceOrder(s: number): readonly [0, 1] | readonly [1, 0] {
  return s % 2 === 0 ? [0, 1] : [1, 0]
}

function middle(values: number[]): number {
  values.sort((x, y) => x - y)
  const mid = values.length >> 1
  return values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2
}

/**
 * `a` (a baseline) and `b` in alternating slices of `timeMs / slices` each, after both warmed up.
 * This host changes speed for seconds at a time: a baseline measured before its target can fall
 * in another spell than the target; in neighbouring slices both see the same one.
 */
export function measurePair(
  a: (i: number) => unknown,
  b: (i: number) => unknown,
  options: MeasureOptions & { readonly slices?: number },
): PairTiming {
  const slices = options.slices ?? 10
  const next = [runFor(a, options.warmupMs, 0).ops, runFor(b, options.warmupMs, 0).ops]
  const fns = [a, b]
  const perOp: [number[], number[]] = [[], []]
  const ratios: number[] = []
  for (let s = 0; s < slices; s++) {
    const slice = [0, 0]
    for (const which of sliceOrder(s)) {
      const r = runFor(fns[which]!, options.timeMs / slices, next[which]!)
      next[which]! += r.ops
      slice[which] = r.ns / r.ops
      perOp[which].push(slice[which]!)
    }
    ratios.push(slice[1]! / slice[0]!)
  }
  const timing = (ns: number): Timing => ({ nsPerOp: ns, opsPerSec: 1e9 / ns })
  return { a: timing(middle(perOp[0])), b: timing(middle(perOp[1])), ratio: middle(ratios) }
}
