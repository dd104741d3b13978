// Deployment tests' support: the public environment contract, file readers and a Dockerfile parser.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { LOADER_ENV, OPTIONS, SECRET_OPTIONS } from '../../../src/config/schema.js'
import { createMetrics } from '../../../src/observability/metrics.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** The public environment contract, exactly as published (DESIGN.md, README). */
export const ENV_CONTRACT: ReadonlySet<string> = new Set([
  'GATEWAY_CONFIG',
  'GATEWAY_HOST',
  'GATEWAY_PORT',
  'GATEWAY_ADMIN_HOST',
  'GATEWAY_ADMIN_PORT',
  'GATEWAY_MAX_HEADER_BYTES',
  'GATEWAY_HEADERS_TIMEOUT_MS',
  'GATEWAY_REQUEST_TIMEOUT_MS',
  'GATEWAY_KEEP_ALIVE_TIMEOUT_MS',
  'GATEWAY_TRUST_FORWARDED',
  'GATEWAY_UPSTREAM_URL',
  'GATEWAY_UPSTREAM_JWT_SECRET',
  'GATEWAY_UPSTREAM_JWT_SECRET_FILE',
  'GATEWAY_UPSTREAM_JWT_SECRET_IS_BASE64',
  'GATEWAY_UPSTREAM_JWT_KID',
  'GATEWAY_UPSTREAM_TIMEOUT_MS',
  'GATEWAY_UPSTREAM_BODY_TIMEOUT_MS',
  'GATEWAY_UPSTREAM_CONNECT_TIMEOUT_MS',
  'GATEWAY_UPSTREAM_CONNECTIONS',
  'GATEWAY_JWT_SECRET',
  'GATEWAY_JWT_SECRET_FILE',
  'GATEWAY_JWT_SECRET_IS_BASE64',
  'GATEWAY_JWKS_URL',
  'GATEWAY_JWT_AUD',
  'GATEWAY_JWT_ISS',
  'GATEWAY_JWT_CLOCK_SKEW_SECONDS',
  'GATEWAY_JWT_CACHE_MAX_ENTRIES',
  'GATEWAY_JWKS_MAX_AGE_SECONDS',
  'GATEWAY_JWKS_COOLDOWN_SECONDS',
  'GATEWAY_JWKS_TIMEOUT_MS',
  'GATEWAY_DB_URL',
  'GATEWAY_DB_URL_FILE',
  'GATEWAY_DB_POOL_SIZE',
  'GATEWAY_DB_LOOKUP_TIMEOUT_MS',
  'GATEWAY_DB_USER_QUERY',
  'GATEWAY_DB_SESSION_QUERY',
  'GATEWAY_DB_NOTIFY_CHANNEL',
  'GATEWAY_CLAIMS_CACHE_MAX_ENTRIES',
  'GATEWAY_CLAIMS_TTL_SECONDS',
  'GATEWAY_CLAIMS_MAX_STALE_SECONDS',
  'GATEWAY_CLAIMS_DISCONNECTED_TTL_SECONDS',
  'GATEWAY_CLAIMS_ON_DB_DOWN',
  'GATEWAY_ROLE_CLAIM',
  'GATEWAY_ROLE_MAP',
  'GATEWAY_ROLES_ALLOWED',
  'GATEWAY_DEFAULT_ROLE',
  'GATEWAY_ALLOW_PRIVILEGED_ROLES',
  'GATEWAY_ANONYMOUS',
  'GATEWAY_HOOK_URI',
  'GATEWAY_HOOK_SECRETS',
  'GATEWAY_HOOK_SECRETS_FILE',
  'GATEWAY_HOOK_TIMEOUT_MS',
  'GATEWAY_HOOK_MAX_RESPONSE_BYTES',
  'GATEWAY_MINT_CLAIMS',
  'GATEWAY_MINT_TTL_SECONDS',
  'GATEWAY_MINT_WARN_BYTES',
  'GATEWAY_LOG_LEVEL',
  'GATEWAY_LOG_PRETTY',
  'GATEWAY_SHUTDOWN_DELAY_MS',
  'GATEWAY_SHUTDOWN_DEADLINE_MS',
])

/** The names the configuration loader accepts: every option, its `_FILE` form for secrets, the loader's own. */
export const LOADER_NAMES: ReadonlySet<string> = new Set([
  ...LOADER_ENV.map((entry) => entry.env),
  ...OPTIONS.map((option) => option.env),
  ...SECRET_OPTIONS.map((option) => option.env + '_FILE'),
])

/** The loader's default for an option, by environment name (ports, shutdown timings). */
export function defaultOf(env: string): unknown {
  const option = OPTIONS.find((candidate) => candidate.env === env)
  if (option === undefined) throw new Error(`no option ${env}`)
  return option.default
}

export function readText(relative: string): string {
  return readFileSync(join(ROOT, relative), 'utf8')
}

export function exists(relative: string): boolean {
  return existsSync(join(ROOT, relative))
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped trees, checked field by field
export type Doc = any

/** Every YAML document of a file, as plain JS; a parse error or warning fails the test. */
export function readYaml(relative: string): Doc[] {
  const docs = parseAllDocuments(readText(relative), { prettyErrors: true })
  if (!Array.isArray(docs)) return []
  const out: Doc[] = []
  for (const doc of docs) {
    const problems = [...doc.errors, ...doc.warnings]
    if (problems.length > 0) throw new Error(`${relative}: ${problems.map((p) => p.message).join('; ')}`)
    const value = doc.toJS({ maxAliasCount: 100 })
    if (value !== null && value !== undefined) out.push(value)
  }
  return out
}

export interface Instruction {
  readonly keyword: string
  readonly args: string
  readonly stage: string
}

export interface Dockerfile {
  readonly args: ReadonlyMap<string, string>
  readonly stages: readonly { readonly name: string; readonly image: string }[]
  readonly instructions: readonly Instruction[]
}

/** Enough of the Dockerfile grammar for these tests: comments, `\` continuations, global ARGs, stages. */
export function parseDockerfile(text: string): Dockerfile {
  const logical: string[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (pending === '' && (line === '' || line.startsWith('#'))) continue
    if (pending !== '' && line.startsWith('#')) continue
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' '
      continue
    }
    logical.push((pending + line).trim())
    pending = ''
  }
  if (pending !== '') logical.push(pending.trim())

  const args = new Map<string, string>()
  const stages: { name: string; image: string }[] = []
  const instructions: Instruction[] = []
  let stage = ''
  for (const line of logical) {
    const space = line.search(/\s/)
    const keyword = (space === -1 ? line : line.slice(0, space)).toUpperCase()
    const rest = space === -1 ? '' : line.slice(space).trim()
    if (keyword === 'ARG' && stages.length === 0) {
      const [name, value] = rest.split('=', 2)
      args.set(name!, value ?? '')
      continue
    }
    if (keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)
      if (match === null) throw new Error(`cannot read FROM ${rest}`)
      const image = match[1]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? '')
      stage = match[2] ?? String(stages.length)
      stages.push({ name: stage, image })
    }
    instructions.push({ keyword, args: rest, stage })
  }
  return { args, stages, instructions }
}

/** An exec-form argument list (`["node", "x.js"]`), or null for the shell form. */
export function execForm(args: string): string[] | null {
  if (!args.startsWith('[')) return null
  const parsed: unknown = JSON.parse(args)
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) return null
  return parsed
}

/** Every series name the gateway exports (histograms as _bucket/_sum/_count), with its label names. */
export async function exportedSeries(): Promise<Map<string, ReadonlySet<string>>> {
  const metrics = createMetrics()
  const series = new Map<string, ReadonlySet<string>>()
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const labels = new Set<string>(['job', 'instance'])
    const own = metrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] }
    for (const label of own.labelNames ?? []) labels.add(label)
    // Default metrics carry labels the registry learns only from values (gc kind, version info).
    for (const value of metric.values as { labels: Record<string, unknown> }[]) {
      for (const label of Object.keys(value.labels)) labels.add(label)
    }
    if (String(metric.type) === 'histogram') {
      series.set(`${metric.name}_bucket`, new Set([...labels, 'le']))
      series.set(`${metric.name}_sum`, labels)
      series.set(`${metric.name}_count`, labels)
    } else {
      series.set(metric.name, labels)
    }
  }
  return series
}

/** `gateway_x{a="b", c!="d"}` -> [name, [a, c]]; a bare name -> [name, []]. */
export function selectors(expr: string): [string, string[]][] {
  const found: [string, string[]][] = []
  for (const match of expr.matchAll(/\b(gateway_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
    const labels = (match[3] ?? '')
      .split(',')
      .map((m) => m.trim().split(/\s*(=~|!~|!=|=)\s*/)[0]!)
      .filter((l) => l !== '')
    found.push([match[1]!, labels])
  }
  return found
}
