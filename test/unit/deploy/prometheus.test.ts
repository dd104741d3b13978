// Deployment: the Prometheus alerting rules parse and query only series and labels the gateway exports.
import { describe, expect, it } from 'vitest'
import { type Doc, exportedSeries, readYaml, selectors } from './support.js'

const rules: Doc[] = readYaml('config/prometheus/alerts.yaml')[0].groups.flatMap((g: Doc) => g.rules)

describe('Prometheus alerting rules', () => {
  it('are named, timed, labelled and annotated', () => {
    expect(rules.length).toBeGreaterThan(0)
    const names = rules.map((r) => r.alert)
    expect(new Set(names).size).toBe(names.length)
    for (const rule of rules) {
      expect(rule.alert, JSON.stringify(rule)).toMatch(/^Gateway[A-Z]\w+$/)
      expect(rule.for, rule.alert).toMatch(/^\d+m$/)
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels.severity)
      expect(rule.annotations.summary, rule.alert).toBeTruthy()
    }
  })

  it('query only series and labels the gateway exports', async () => {
    const series = await exportedSeries()
    const unknown: string[] = []
    for (const rule of rules) {
      const found = selectors(rule.expr)
      expect(found.length, rule.alert).toBeGreaterThan(0)
      for (const [name, labels] of found) {
        const known = series.get(name)
        if (known === undefined) unknown.push(`${rule.alert}: ${name}`)
        else
          for (const label of labels) if (!known.has(label)) unknown.push(`${rule.alert}: ${name}{${label}}`)
      }
      for (const match of (rule.expr as string).matchAll(/by \(([^)]*)\)/g)) {
        for (const label of match[1]!.split(',').map((l) => l.trim())) {
          if (!found.some(([name]) => series.get(name)?.has(label)))
            unknown.push(`${rule.alert}: by (${label})`)
        }
      }
    }
    expect(unknown).toEqual([])
  })
})
