// Prometheus metrics (gateway_*): created once, label children bound at start, closed label sets only.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { FastCounter, FastHistogram } from './fast-metrics.js'

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx'
/** Verification outcomes: the closed label set of gateway_jwt_verifications_total. */
export const VERIFY_OUTCOMES = [
  'ok',
  'expired',
  'not_yet_valid',
  'issued_in_future',
  'audience',
  'issuer',
  'signature',
  'no_key',
  'algorithm',
  'malformed',
  'claims',
  'no_secret',
] as const
export type VerifyOutcome = (typeof VERIFY_OUTCOMES)[number]
export type UpstreamErrorKind = 'connect' | 'timeout' | 'reset' | 'other'
export type CacheEvent = 'hit' | 'miss' | 'stale'

export const METHOD_LABELS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER'] as const
export type MethodLabel = (typeof METHOD_LABELS)[number]

export function methodLabel(method: string | undefined): MethodLabel {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'POST':
    case 'PUT':
    case 'PATCH':
    case 'DELETE':
    case 'OPTIONS':
      return method
    default:
      return 'OTHER'
  }
}

/** Seconds; from 100 us (the gateway's own work) to 10 s (slow upstream queries). */
const DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

export interface Metrics {
  readonly registry: Registry
  /** Updated on every request: {@link FastCounter} / {@link FastHistogram}, same export as prom-client's. */
  readonly requests: FastCounter<'method' | 'status_class'>
  readonly requestDuration: FastHistogram<'method'>
  readonly inFlight: Gauge
  readonly verifications: FastCounter<'outcome'>
  readonly verifyCache: FastCounter<'event'>
  readonly claimsCache: Counter<'event'>
  readonly claimsLookups: Counter<'result'>
  readonly claimsLookupDuration: Histogram
  readonly invalidations: Counter<'kind'>
  readonly listenerConnected: Gauge
  readonly minted: FastCounter<'event'>
  readonly mintedOversize: Counter
  readonly hookCalls: Counter<'result'>
  readonly upstreamDuration: FastHistogram
  readonly upstreamErrors: Counter<'kind'>
  readonly keysetFetches: Counter<'result'>
  readonly keysetKeys: Gauge
  readonly roleRefusals: Counter
  /**
   * Runs `hook` before every scrape (`registry.metrics()` or `getMetricsAsJSON()`), for counts a
   * stage batches in plain integers or gauges read from a live source. Returns its removal.
   */
  onCollect(hook: () => void): () => void
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'gateway_' })
  const registers = [registry]
  // prom-client calls a metric's collect() at the start of its get(); the hooks run from the
  // metrics whose values they feed, and running them more than once per scrape is harmless.
  const hooks = new Set<() => void>()
  const collect = (): void => {
    for (const hook of hooks) hook()
  }
  return {
    onCollect(hook) {
      hooks.add(hook)
      return () => {
        hooks.delete(hook)
      }
    },
    registry,
    requests: new FastCounter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by method and status class',
      labelNames: ['method', 'status_class'],
      registers,
    }),
    requestDuration: new FastHistogram({
      name: 'gateway_request_duration_seconds',
      help: 'Time from request to the end of the response',
      labelNames: ['method'],
      buckets: DURATION_BUCKETS,
      registers,
    }),
    // `collect`: a count kept by the pipeline can be read into the gauge at scrape time (onCollect).
    inFlight: new Gauge({
      name: 'gateway_requests_in_flight',
      help: 'Requests being served',
      registers,
      collect,
    }),
    verifications: new FastCounter({
      name: 'gateway_jwt_verifications_total',
      help: 'Token verifications by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    verifyCache: new FastCounter({
      name: 'gateway_jwt_cache_total',
      help: 'Verified-token cache lookups by event (hit, miss)',
      labelNames: ['event'],
      registers,
      collect,
    }),
    claimsCache: new Counter({
      name: 'gateway_claims_cache_total',
      help: 'Fresh-claims cache lookups by event (hit, miss, stale)',
      labelNames: ['event'],
      registers,
      collect,
    }),
    claimsLookups: new Counter({
      name: 'gateway_claims_lookups_total',
      help: 'Database lookups of current claims by result',
      labelNames: ['result'],
      registers,
    }),
    claimsLookupDuration: new Histogram({
      name: 'gateway_claims_lookup_duration_seconds',
      help: 'Latency of database lookups of current claims',
      buckets: DURATION_BUCKETS,
      registers,
    }),
    invalidations: new Counter({
      name: 'gateway_claims_invalidations_total',
      help: 'Invalidation notifications received, by kind',
      labelNames: ['kind'],
      registers,
    }),
    listenerConnected: new Gauge({
      name: 'gateway_claims_listener_connected',
      help: '1 while the LISTEN connection is up',
      registers,
    }),
    minted: new FastCounter({
      name: 'gateway_minted_tokens_total',
      help: 'Tokens for PostgREST: signed or reused',
      labelNames: ['event'],
      registers,
    }),
    mintedOversize: new Counter({
      name: 'gateway_minted_tokens_oversize_total',
      help: 'Minted tokens larger than the configured warning size',
      registers,
    }),
    hookCalls: new Counter({
      name: 'gateway_hook_calls_total',
      help: 'Custom access token hook calls by result',
      labelNames: ['result'],
      registers,
    }),
    upstreamDuration: new FastHistogram({
      name: 'gateway_upstream_duration_seconds',
      help: 'Time until the upstream response headers arrived',
      buckets: DURATION_BUCKETS,
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'gateway_upstream_errors_total',
      help: 'Upstream failures by kind',
      labelNames: ['kind'],
      registers,
    }),
    keysetFetches: new Counter({
      name: 'gateway_jwks_fetches_total',
      help: 'Remote key set fetches by result',
      labelNames: ['result'],
      registers,
    }),
    keysetKeys: new Gauge({
      name: 'gateway_jwks_keys',
      help: 'Inbound verification keys loaded',
      registers,
      collect,
    }),
    roleRefusals: new Counter({
      name: 'gateway_role_refusals_total',
      help: 'Requests refused because the role is outside the allow-list',
      registers,
    }),
  }
}
