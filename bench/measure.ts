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
