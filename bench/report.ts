// Benchmarks: result rows, targets, the one summary table, and the comparison with the committed baseline.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'

export const RESULTS_DIR = new URL('../../bench/results/', import.meta.url)

/** One line of the summary table. `metrics` holds the raw figures written to the results JSON. */
export interface Row {
  readonly section: 'micro' | 'load' | 'memory' | 'count' | 'latency'
  readonly name: string
  /** Pre-formatted figure(s), e.g. `612 ns/op (1.63 M/s)`. */
  readonly figure: string
  /** Ratio against the baseline measured in the same run, e.g. `1.42x raw HMAC`. */
  readonly versus: string
  readonly target: string
  readonly pass: boolean | null
  readonly metrics: Readonly<Record<string, number>>
}

export interface Results {
  readonly date: string
  readonly node: string
  readonly quick: boolean
  readonly machine: { readonly cpus: number; readonly model: string }
  readonly rows: readonly Row[]
}

/** This run's rows, with the runtime and the machine, written to bench/results/`file`. */
export function writeResults(file: string, rows: readonly Row[], quick: boolean): Results {
  const results: Results = {
    date: new Date().toISOString(),
    node: process.version,
    quick,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown' },
    rows,
  }
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(new URL(file, RESULTS_DIR), `${JSON.stringify(results, null, 2)}\n`)
  return results
}

export function row(
  section: Row['section'],
  name: string,
  figure: string,
  metrics: Record<string, number>,
  extra: { versus?: string; target?: string; pass?: boolean | null } = {},
): Row {
  return {
    section,
    name,
    figure,
    versus: extra.versus ?? '',
    target: extra.target ?? '',
    pass: extra.pass ?? null,
    metrics,
  }
}

export function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e4) return `${(ns / 1e3).toFixed(1)} us`
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} us`
  return `${ns.toFixed(0)} ns`
}

export function formatRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M/s`
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k/s`
  return `${perSec.toFixed(0)}/s`
}

/** The main metric compared with the committed baseline (the first one of the row). */
function drift(current: Row, baseline: Results | null): string {
  if (baseline === null) return ''
  const previous = baseline.rows.find((r) => r.section === current.section && r.name === current.name)
  if (previous === undefined) return 'new'
  const key = Object.keys(current.metrics)[0]
  if (key === undefined) return ''
  const now = current.metrics[key]
  const then = previous.metrics[key]
  if (now === undefined || then === undefined || then === 0) return ''
  const change = (now / then - 1) * 100
  return `${change >= 0 ? '+' : ''}${change.toFixed(0)}% ${key}`
}

/** Renders the single summary table (Markdown, so the README can carry it as it is). */
export function renderTable(rows: readonly Row[], baseline: Results | null): string {
  const header = [
    'section',
    'case',
    'figure',
    'vs baseline in this run',
    'target',
    'result',
    'vs baseline.json',
  ]
  const lines = rows.map((r) => [
    r.section,
    r.name,
    r.figure,
    r.versus,
    r.target,
    r.pass === null ? '' : r.pass ? 'PASS' : 'FAIL',
    drift(r, baseline),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)))
  const fmt = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n')
}
