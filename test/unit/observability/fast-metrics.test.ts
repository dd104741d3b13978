// Metrics, request path: FastCounter and FastHistogram export exactly what prom-client's own Counter and Histogram do.
import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { FastCounter, FastHistogram } from '../../../src/observability/fast-metrics.js'

const BUCKETS = [0.001, 0.01, 0.1, 1]

/** The same operations on a prom-client registry and on one holding the fast metrics. */
function pair() {
  const reference = new Registry()
  const fast = new Registry()
  const ref = {
    requests: new Counter({
      name: 'x_requests_total',
      help: 'Requests',
      labelNames: ['method', 'status_class'],
      registers: [reference],
    }),
    duration: new Histogram({
      name: 'x_duration_seconds',
      help: 'Duration',
      labelNames: ['method'],
      buckets: BUCKETS,
      registers: [reference],
    }),
    plain: new Histogram({
      name: 'x_plain_seconds',
      help: 'Plain',
      buckets: BUCKETS,
      registers: [reference],
    }),
  }
  const ours = {
    requests: new FastCounter({
      name: 'x_requests_total',
      help: 'Requests',
      labelNames: ['method', 'status_class'],
      registers: [fast],
    }),
    duration: new FastHistogram({
      name: 'x_duration_seconds',
      help: 'Duration',
      labelNames: ['method'],
      buckets: BUCKETS,
      registers: [fast],
    }),
    plain: new FastHistogram({ name: 'x_plain_seconds', help: 'Plain', buckets: BUCKETS, registers: [fast] }),
  }
  return { reference, fast, ref, ours }
}

describe('fast metrics', () => {
  it('export the text and JSON of prom-client for the same updates, bucket edges included', async () => {
    const { reference, fast, ref, ours } = pair()
    // Bound children, as the request path uses them; some label sets bound but never updated.
    const get2xx = ours.requests.labels('GET', '2xx')
    ours.requests.labels('HEAD', '2xx')
    const getDuration = ours.duration.labels('GET')
    ours.duration.labels('PUT')
    const values = [0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.7, 1, 3, 0]
    for (const v of values) {
      ref.requests.labels('GET', '2xx').inc()
      get2xx.inc()
      ref.duration.labels('GET').observe(v)
      getDuration.observe(v)
      ref.plain.observe(v * 2)
      ours.plain.observe(v * 2)
    }
    ref.requests.labels('POST', '5xx').inc(3)
    ours.requests.labels('POST', '5xx').inc(3)
    ref.duration.labels('POST').observe(0.02)
    ours.duration.labels('POST').observe(0.02)

    const text = await fast.metrics()
    expect(text).toBe(await reference.metrics())
    expect(text).toContain('x_duration_seconds_bucket{le="0.001",method="GET"} 3\n')
    expect(text).toContain('x_requests_total{method="POST",status_class="5xx"} 3\n')
    expect(text).not.toContain('HEAD')
    expect(text).not.toContain('PUT')
    expect(await fast.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON())
  })

  it('read the same as prom-client when nothing was observed, and after a reset', async () => {
    const { reference, fast, ref, ours } = pair()
    expect(await fast.metrics()).toBe(await reference.metrics())
    ours.plain.observe(0.5)
    ref.plain.observe(0.5)
    reference.resetMetrics()
    fast.resetMetrics()
    expect(await fast.metrics()).toBe(await reference.metrics())
    expect(await fast.metrics()).not.toContain('x_plain_seconds_count')
  })

  it('run collect before every export, as prom-client does, so counts batched elsewhere show in that scrape', async () => {
    const reference = new Registry()
    const fast = new Registry()
    let pendingRef = 0
    let pendingFast = 0
    const ref: Counter<'event'> = new Counter({
      name: 'x_cache_total',
      help: 'Cache',
      labelNames: ['event'],
      registers: [reference],
      collect: () => {
        if (pendingRef > 0) ref.labels('hit').inc(pendingRef)
        pendingRef = 0
      },
    })
    const ours: FastCounter<'event'> = new FastCounter({
      name: 'x_cache_total',
      help: 'Cache',
      labelNames: ['event'],
      registers: [fast],
      collect: () => {
        if (pendingFast > 0) ours.labels('hit').inc(pendingFast)
        pendingFast = 0
      },
    })
    pendingRef = pendingFast = 5
    const text = await fast.metrics()
    expect(text).toBe(await reference.metrics())
    expect(text).toContain('x_cache_total{event="hit"} 5\n')
    pendingRef = pendingFast = 2
    expect(await fast.getMetricsAsJSON()).toEqual(await reference.getMetricsAsJSON())
    expect(ours.labels('hit').value).toBe(7)
  })

  it('refuses a label set of the wrong size', () => {
    const { ours } = pair()
    expect(() => ours.requests.labels('GET')).toThrow('expected 2 label values (method, status_class), got 1')
  })
})
