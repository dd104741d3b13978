// Configuration from the environment: GATEWAY_* variables (and their *_FILE forms) mapped onto option keys.
import { resolve } from 'node:path'
import { ConfigError, LOADER_ENV, OPTIONS, type OptionSpec, SECRET_OPTIONS } from './schema.js'
import { type ConfigFs, readSecretFile, resolveSecretReference } from './secrets.js'

/** Where a raw value came from, so an error message can point there. */
export type Origin =
  | { readonly from: 'env'; readonly name: string }
  | { readonly from: 'yaml'; readonly file: string }

export interface RawValue {
  readonly value: unknown
  readonly origin: Origin
}

export type Environment = Readonly<Record<string, string | undefined>>

const BY_ENV: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((option) => [option.env, option]))
const BY_FILE_ENV: ReadonlyMap<string, OptionSpec> = new Map(
  SECRET_OPTIONS.map((option) => [option.env + '_FILE', option]),
)
const LOADER_NAMES: ReadonlySet<string> = new Set(LOADER_ENV.map((entry) => entry.env))

/**
 * Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_8080_TCP...` for every Service in the
 * namespace (docker links did the same); a Service named `gateway` would otherwise trip the
 * unknown-variable check. `GATEWAY_PORT` itself is caught by its value (see below).
 */
const SERVICE_LINK =
  /^GATEWAY_(?:[A-Z0-9_]+_)?(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)$/
const SERVICE_LINK_VALUE = /^(?:tcp|udp|sctp):\/\//

/** All names a user may set, for "did you mean" hints. */
const KNOWN_NAMES: readonly string[] = [...LOADER_NAMES, ...BY_ENV.keys(), ...BY_FILE_ENV.keys()]

/**
 * Reads every `GATEWAY_*` variable. Unknown ones are refused rather than ignored: a typo such as
 * `GATEWAY_ANONYMOS=deny` must not leave anonymous access open. Empty values count as unset
 * (compose files often pass `NAME=`), except where an option gives empty a meaning.
 */
export function readEnvironment(env: Environment, fs: ConfigFs, cwd: string): Map<string, RawValue> {
  const values = new Map<string, RawValue>()
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('GATEWAY_') || LOADER_NAMES.has(name) || SERVICE_LINK.test(name)) continue
    const value = env[name]
    if (value === undefined) continue
    const option = BY_ENV.get(name)
    if (option !== undefined) {
      if (value === '' && !option.emptyIsValue) continue
      const label = `${name} (${option.key})`
      if (option.secret && nonEmpty(env[name + '_FILE'])) {
        throw new ConfigError(`${label} and ${name}_FILE are both set: set only one`)
      }
      if (SERVICE_LINK_VALUE.test(value) && option.kind.expect.startsWith('an integer')) {
        throw new ConfigError(
          `${label} is ${JSON.stringify(value)}, a Kubernetes service link: set enableServiceLinks: false in the pod spec or rename the Service`,
        )
      }
      const resolved = option.secret ? resolveSecretReference(value, cwd, fs, label).value : value
      values.set(option.key, { value: resolved, origin: { from: 'env', name } })
      continue
    }
    const fileOption = BY_FILE_ENV.get(name)
    if (fileOption !== undefined) {
      if (value === '') continue
      const content = readSecretFile(fs, resolve(cwd, value), `${name} (${fileOption.key})`)
      values.set(fileOption.key, { value: content, origin: { from: 'env', name } })
      continue
    }
    throw new ConfigError(
      `${name} is not a known option${didYouMean(name, KNOWN_NAMES)}; unknown GATEWAY_* variables are refused so that a typo cannot go unnoticed`,
    )
  }
  return values
}

function nonEmpty(value: string | undefined): boolean {
  return value !== undefined && value !== ''
}

/**
 * ` (did you mean X?)` for the closest candidate, or nothing when none is close: a small edit
 * distance first, then a candidate that contains the name (`port` -> `server.port`, the shortest
 * wins), then one the name contains (`role.defaultRole` -> `role.default`, the longest wins).
 */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const lower = name.toLowerCase()
  let best: string | null = null
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1
  for (const candidate of candidates) {
    const distance = levenshtein(lower, candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  if (best === null) {
    for (const candidate of candidates) {
      if (candidate.toLowerCase().includes(lower) && (best === null || candidate.length < best.length)) {
        best = candidate
      }
    }
  }
  if (best === null) {
    for (const candidate of candidates) {
      if (
        candidate.length >= 3 &&
        lower.includes(candidate.toLowerCase()) &&
        (best === null || candidate.length > best.length)
      ) {
        best = candidate
      }
    }
  }
  return best === null ? '' : ` (did you mean ${best}?)`
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost)
    }
    previous = current
  }
  return previous[b.length]!
}
