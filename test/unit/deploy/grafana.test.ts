// Deployment: the Grafana dashboard imports cleanly and queries only metrics the gateway exports.
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/observability/metrics.js'
import { type Doc, exportedSeries, readText, selectors } from './support.js'

const dashboard = JSON.parse(readText('config/grafana/postgrest-gateway.json')) as Doc
const panels: Doc[] = dashboard.panels.filter((p: Doc) => p.type !== 'row')
const expressions: string[] = panels.flatMap((p) => p.targets.map((t: Doc) => t.expr as string))

describe('Grafana dashboard', () => {
  it('is importable: a Prometheus datasource input used by every panel, query and variable', () => {
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', pluginId: 'prometheus' }),
    ])
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's import placeholder, literally
    const ds = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }
    for (const panel of panels) {
      expect(panel.datasource, panel.title).toEqual(ds)
      for (const target of panel.targets) expect(target.datasource, panel.title).toEqual(ds)
    }
    for (const variable of dashboard.templating.list) expect(variable.datasource).toEqual(ds)
    expect(dashboard.uid).toBe('postgrest-gateway')
    expect(dashboard.id).toBeUndefined()
  })

  it('has unique panel ids and non-overlapping positions', () => {
    const ids = dashboard.panels.map((p: Doc) => p.id)
    expect(new Set(ids).size).toBe(ids.length)
    const cells = new Set<string>()
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos
      expect(x + w, p.title).toBeLessThanOrEqual(24)
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false)
          cells.add(`${i},${j}`)
        }
      }
    }
  })

  it('queries only series and labels the gateway exports (own metrics and gateway_-prefixed defaults)', async () => {
    const series = await exportedSeries()
    const variables: string[] = dashboard.templating.list.map((v: Doc) => v.query.query as string)
    const unknown: string[] = []
    for (const expr of [...expressions, ...variables]) {
      for (const [name, labels] of selectors(expr)) {
        const known = series.get(name)
        if (known === undefined) unknown.push(name)
        else for (const label of labels) if (!known.has(label)) unknown.push(`${name}{${label}}`)
      }
      for (const match of expr.matchAll(/by \(([^)]*)\)/g)) {
        const names = selectors(expr).map(([name]) => name)
        for (const label of match[1]!.split(',').map((l) => l.trim())) {
          if (!names.some((name) => series.get(name)?.has(label))) unknown.push(`by (${label}) in ${expr}`)
        }
      }
    }
    expect(unknown).toEqual([])
  })

  it('uses every metric the gateway defines', async () => {
    const used = new Set(expressions.flatMap((e) => selectors(e).map(([name]) => name)))
    const own = createMetrics({ defaultMetrics: false })
    const missing = (await own.registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((name) => ![name, `${name}_bucket`].some((s) => used.has(s)))
    expect(missing).toEqual([])
  })

  it('shows the panels operators need', () => {
    const titles = panels.map((p) => p.title)
    expect(titles).toEqual(
      expect.arrayContaining([
        'Requests by status class',
        'Request latency',
        'In-flight requests',
        'Verification outcomes',
        'Verified-token cache hit ratio',
        'Claims cache',
        'Claims lookup latency',
        'Invalidations',
        'Listener connected',
        'Minted tokens: signed vs reused',
        'Hook calls',
        'Upstream latency',
        'Upstream errors by kind',
        'JWKS fetches',
        'Inbound keys loaded',
        'CPU',
        'Memory',
        'Event loop lag',
      ]),
    )
  })

  it('computes latency percentiles from the duration histograms by le', () => {
    const latency = panels.find((p) => p.title === 'Request latency')!
    expect(latency.targets.map((t: Doc) => t.expr)).toEqual(
      ['0.5', '0.95', '0.99'].map(
        (q) =>
          `histogram_quantile(${q}, sum by (le) (rate(gateway_request_duration_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))`,
      ),
    )
  })
})
