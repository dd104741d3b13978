// Metrics: collect hooks run on every scrape; the verifier's batched cache hits show in the next scrape.
import { describe, expect, it } from 'vitest'
import { parseKeySet } from '../../../src/auth/key-set.js'
import { createVerifier } from '../../../src/auth/verifier.js'
import { createMetrics } from '../../../src/observability/metrics.js'
import { signHs } from '../../support/tokens.js'

const SECRET = 'reallyreallyreallyreallyverysafe'

async function value(
  metrics: ReturnType<typeof createMetrics>,
  name: string,
  labels: Record<string, string>,
) {
  const json = await metrics.registry.getMetricsAsJSON()
  const metric = json.find((m) => m.name === name)
  const sample = metric?.values.find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  )
  return sample?.value ?? null
}

describe('metrics', () => {
  it('runs collect hooks before each scrape until they are removed', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    let runs = 0
    const off = metrics.onCollect(() => {
      runs++
      metrics.keysetKeys.set(runs)
    })
    await metrics.registry.metrics()
    expect(runs).toBeGreaterThan(0)
    const seen = runs
    expect(await value(metrics, 'gateway_jwks_keys', {})).toBeGreaterThan(seen)
    off()
    const after = runs
    await metrics.registry.metrics()
    expect(runs).toBe(after)
  })

  it('shows verified-token cache hits at the next scrape, not only at the flush timer', async () => {
    const metrics = createMetrics({ defaultMetrics: false })
    const verifier = createVerifier({
      keys: parseKeySet(SECRET, { isBase64: false }),
      aud: null,
      iss: null,
      clockSkewSeconds: 30,
      cacheMaxEntries: 100,
      metrics,
    })
    const token = signHs({ sub: 'u', exp: Math.floor(Date.now() / 1000) + 600 }, SECRET)
    for (let i = 0; i < 4; i++) await verifier.verify(token)
    expect(await value(metrics, 'gateway_jwt_cache_total', { event: 'miss' })).toBe(1)
    expect(await value(metrics, 'gateway_jwt_cache_total', { event: 'hit' })).toBe(3)
    expect(await value(metrics, 'gateway_jwt_verifications_total', { outcome: 'ok' })).toBe(1)
    await verifier.close()
    // A closed verifier no longer hooks into scrapes (a reload retires it).
    await metrics.registry.metrics()
    expect(await value(metrics, 'gateway_jwt_cache_total', { event: 'hit' })).toBe(3)
  })
})
