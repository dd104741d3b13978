// Deployment: docs/operations.md lists exactly the metrics the gateway exports, and the shutdown numbers the manifests use.
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/observability/metrics.js'
import { readText, readYaml } from './support.js'

const doc = readText('docs/operations.md')

describe('docs/operations.md', () => {
  it('has one metrics-table row per gateway metric, with its type and label names', async () => {
    const rows = new Map<string, { type: string; labels: string }>()
    for (const match of doc.matchAll(/^\| `(gateway_[a-z0-9_]+)` \| (\w+) \|([^|]*)\|/gm)) {
      rows.set(match[1]!, { type: match[2]!, labels: match[3]!.trim() })
    }
    const metrics = createMetrics({ defaultMetrics: false })
    const expected = new Map<string, { type: string; labels: string[] }>()
    for (const json of await metrics.registry.getMetricsAsJSON()) {
      const metric = metrics.registry.getSingleMetric(json.name) as unknown as { labelNames?: string[] }
      expected.set(json.name, { type: String(json.type), labels: metric.labelNames ?? [] })
    }
    expect([...rows.keys()].sort()).toEqual([...expected.keys()].sort())
    for (const [name, { type, labels }] of expected) {
      const row = rows.get(name)!
      expect(row.type, name).toBe(type)
      const documented = [...row.labels.matchAll(/`([a-z_]+)`/g)].map((m) => m[1])
      expect(documented, name).toEqual(labels)
    }
  })

  it('quotes the shutdown timing the Kubernetes manifests use', () => {
    const data = readYaml('config/kubernetes/configmap.yaml')[0].data
    const pod = readYaml('config/kubernetes/deployment.yaml')[0].spec.template.spec
    expect(doc).toContain(`\`GATEWAY_SHUTDOWN_DELAY_MS=${data.GATEWAY_SHUTDOWN_DELAY_MS}\``)
    expect(doc).toContain(`\`GATEWAY_SHUTDOWN_DEADLINE_MS=${data.GATEWAY_SHUTDOWN_DEADLINE_MS}\``)
    expect(doc).toContain(`\`terminationGracePeriodSeconds: ${pod.terminationGracePeriodSeconds}\``)
    const postgrest = pod.containers.find((c: { name: string }) => c.name === 'postgrest')
    expect(doc).toContain(`preStop \`sleep: ${postgrest.lifecycle.preStop.sleep.seconds}\``)
  })
})
