// Observability, request path: a counter and a histogram whose update is a few additions, exported through prom-client.
import type { Registry } from 'prom-client'

/**
 * prom-client hashes a metric's labels on every `inc()` and `observe()`, even through a bound
 * `labels()` child: with five updates per request that was over a microsecond of every proxied
 * request. These two keep one plain object per label set, bound once, and hand prom-client's
 * registry the same data shape its own metrics produce at scrape time, so `/metrics` reads the same.
 */

/** The value shape prom-client's registry formats (`registry.getMetricsAsString`). */
interface ExportValue {
  readonly labels: Record<string, string | number>
  readonly sharedLabels?: Record<string, string>
  readonly value: number
  readonly metricName?: string
  /** prom-client's histogram buckets carry `exemplar: null` when exemplars are off. */
  readonly exemplar?: null
}

interface Exported {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'histogram'
  readonly values: ExportValue[]
  readonly aggregator: 'sum'
}

interface MetricOptions<L extends string> {
  readonly name: string
  readonly help: string
  readonly labelNames?: readonly L[]
  readonly registers: readonly Registry[]
  /** Runs before every export, as prom-client's `collect` (for counts batched elsewhere). */
  readonly collect?: () => void
}

/** A label set's values, in `labelNames` order, as one key. */
function labelKey(values: readonly string[]): string {
  return values.join('\u0000')
}

function labelObject<L extends string>(names: readonly L[], values: readonly string[]): Record<L, string> {
  if (values.length !== names.length) {
    throw new Error(`expected ${names.length} label values (${names.join(', ')}), got ${values.length}`)
  }
  const labels = {} as Record<L, string>
  names.forEach((name, i) => {
    labels[name] = values[i]!
  })
  return labels
}

abstract class FastMetric<L extends string, C extends { readonly labels: Record<string, string> }> {
  readonly name: string
  readonly help: string
  readonly aggregator = 'sum' as const
  readonly labelNames: readonly L[]
  readonly #children = new Map<string, C>()
  readonly #create: (labels: Record<string, string>) => C
  readonly #collect: (() => void) | null

  constructor(options: MetricOptions<L>, create: (labels: Record<string, string>) => C) {
    this.#create = create
    this.#collect = options.collect ?? null
    this.name = options.name
    this.help = options.help
    this.labelNames = options.labelNames ?? []
    // As prom-client: a metric without labels is exported (at zero) before its first update.
    if (this.labelNames.length === 0) this.pin(this.labels())
    // prom-client's registry accepts any object with a name and get(); it formats what get() returns.
    for (const registry of options.registers) {
      registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
    }
  }

  /** Exports `child` even before its first update. */
  protected abstract pin(child: C): void
  protected abstract export(child: C, values: ExportValue[]): void

  /** The child for one label set, created on first use: bind it once, update it per request. */
  labels(...values: string[]): C {
    const key = labelKey(values)
    let child = this.#children.get(key)
    if (child === undefined) {
      child = this.#create(labelObject(this.labelNames, values))
      this.#children.set(key, child)
    }
    return child
  }

  protected get children(): Iterable<C> {
    return this.#children.values()
  }

  /** For the registry's text format (prom-client calls this when it exists). */
  getForPromString(): Exported {
    this.#collect?.()
    const values: ExportValue[] = []
    for (const child of this.#children.values()) this.export(child, values)
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  /** prom-client's JSON shape: every value's labels in one object. */
  get(): Exported {
    const data = this.getForPromString()
    return {
      ...data,
      values: data.values.map(({ sharedLabels, ...value }) => ({
        ...value,
        labels: { ...value.labels, ...sharedLabels },
      })),
    }
  }

  /** As prom-client's reset(): every label set goes (a histogram's unlabeled one too). */
  reset(): void {
    this.#children.clear()
  }

  abstract readonly type: 'counter' | 'histogram'
}

/** One label set of a {@link FastCounter}. */
export class CounterChild {
  value = 0
  used = false
  constructor(readonly labels: Record<string, string>) {}

  inc(amount = 1): void {
    this.value += amount
    this.used = true
  }
}

/** A monotonic counter (prom-client `Counter` semantics, label sets exported once used). */
export class FastCounter<L extends string = never> extends FastMetric<L, CounterChild> {
  readonly type = 'counter' as const

  constructor(options: MetricOptions<L>) {
    super(options, (labels) => new CounterChild(labels))
  }

  protected pin(child: CounterChild): void {
    child.used = true
  }

  protected export(child: CounterChild, values: ExportValue[]): void {
    if (child.used) values.push({ labels: child.labels, value: child.value })
  }

  /** As prom-client's: a counter without labels reads 0 again. */
  override reset(): void {
    super.reset()
    if (this.labelNames.length === 0) this.pin(this.labels())
  }

  /** The counter without labels. */
  inc(amount = 1): void {
    this.labels().inc(amount)
  }
}

/** One label set of a {@link FastHistogram}. */
export class HistogramChild {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  pinned = false

  constructor(
    readonly labels: Record<string, string>,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

/** A histogram with fixed upper bounds (prom-client `Histogram` semantics and export). */
export class FastHistogram<L extends string = never> extends FastMetric<L, HistogramChild> {
  readonly type = 'histogram' as const

  constructor(options: MetricOptions<L> & { readonly buckets: readonly number[] }) {
    const bounds = [...options.buckets].sort((a, b) => a - b)
    super(options, (labels) => new HistogramChild(labels, bounds))
  }

  protected pin(child: HistogramChild): void {
    child.pinned = true
  }

  protected export(child: HistogramChild, values: ExportValue[]): void {
    if (child.count === 0 && !child.pinned) return
    const bucket = `${this.name}_bucket`
    let cumulative = 0
    child.bounds.forEach((bound, i) => {
      cumulative += child.counts[i]!
      values.push({
        labels: { le: bound },
        sharedLabels: child.labels,
        value: cumulative,
        metricName: bucket,
        exemplar: null,
      })
    })
    values.push({
      labels: { le: '+Inf' },
      sharedLabels: child.labels,
      value: child.count,
      metricName: bucket,
      exemplar: null,
    })
    values.push({ labels: {}, sharedLabels: child.labels, value: child.sum, metricName: `${this.name}_sum` })
    values.push({
      labels: {},
      sharedLabels: child.labels,
      value: child.count,
      metricName: `${this.name}_count`,
    })
  }

  /** The histogram without labels. */
  observe(value: number): void {
    this.labels().observe(value)
  }
}
