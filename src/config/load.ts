// Configuration loading: defaults < YAML file < environment, validated once into the frozen Config every stage is built from.
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { parseArgs } from './cli.js'
import { didYouMean, type Environment, type Origin, type RawValue, readEnvironment } from './env.js'
import { ConfigError, isPrivilegedRole, OPTIONS, type OptionSpec, type OptionValues } from './schema.js'
import {
  type ConfigFs,
  checkKeyMaterial,
  describeFsError,
  nodeFs,
  resolveSecretReference,
} from './secrets.js'
import type { Config } from './types.js'

export interface LoadConfigOptions {
  /** Command-line arguments after the script name (`--config <path>`). */
  readonly argv: readonly string[]
  readonly env: Environment
  /** Defaults to node:fs; tests inject files. */
  readonly fs?: ConfigFs
  /** Base for relative paths in the environment and on the command line; defaults to process.cwd(). */
  readonly cwd?: string
}

/**
 * Builds the one frozen {@link Config} from defaults, the YAML file (`--config` or
 * `GATEWAY_CONFIG`) and `GATEWAY_*` variables, reading `@/path` and `*_FILE` secrets. A pure
 * function of its inputs: a reload (SIGHUP) calls it again and so re-reads every file.
 * @throws ConfigError with a one-line message naming the option.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const fs = options.fs ?? nodeFs
  const cwd = options.cwd ?? process.cwd()
  const { configPath } = parseArgs(options.argv)
  const fromEnv = options.env['GATEWAY_CONFIG']
  const file = configPath ?? (fromEnv === undefined || fromEnv === '' ? null : fromEnv)
  const source = file === null ? null : resolve(cwd, file)

  const raw = source === null ? new Map<string, RawValue>() : readYaml(source, fs, configPath !== null)
  for (const [key, value] of readEnvironment(options.env, fs, cwd)) raw.set(key, value)
  const values = validateOptions(raw)
  checkCombinations(values, raw)
  return deepFreeze(buildConfig(values, source))
}

// ---------------------------------------------------------------------------------------------
// YAML

/** The YAML shape, from OPTIONS: sections of known keys; values are checked per option later. */
const YAML_SHAPE = (() => {
  const top: Record<string, z.ZodType> = {}
  const sections = new Map<string, Record<string, z.ZodType>>()
  for (const option of OPTIONS) {
    const [head, leaf] = option.key.split('.') as [string, string | undefined]
    if (leaf === undefined) {
      top[head] = z.unknown().optional()
      continue
    }
    let fields = sections.get(head)
    if (fields === undefined) {
      fields = {}
      sections.set(head, fields)
    }
    fields[leaf] = z.unknown().optional()
  }
  for (const [name, fields] of sections) top[name] = z.strictObject(fields).nullish()
  return z.strictObject(top)
})()

const YAML_KEYS: readonly string[] = [
  ...new Set(OPTIONS.flatMap((option) => [option.key, option.key.split('.')[0]!])),
]

function readYaml(file: string, fs: ConfigFs, fromFlag: boolean): Map<string, RawValue> {
  let text: string
  try {
    text = fs.readFile(file)
  } catch (err) {
    const via = fromFlag ? '--config' : 'GATEWAY_CONFIG'
    throw new ConfigError(`${via} file ${file} cannot be read: ${describeFsError(err)}`)
  }
  // Loaded only when a file is given: the YAML parser costs about 9 MB of resident memory.
  const { parseDocument } = createRequire(import.meta.url)('yaml') as typeof import('yaml')
  const doc = parseDocument(text)
  const syntax = doc.errors[0]
  if (syntax !== undefined) {
    // yaml's message is "<problem> at line L, column C:" followed by a code excerpt: keep line one.
    const first = syntax.message.split('\n')[0]!.replace(/:$/, '')
    throw new ConfigError(`${file} is not valid YAML: ${first}`)
  }
  const data: unknown = doc.toJS() ?? {}
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(`${file} must be a YAML mapping of options (server:, upstream:, ...)`)
  }
  const shape = YAML_SHAPE.safeParse(data)
  if (!shape.success) {
    const issue = shape.error.issues[0]!
    const at = issue.path.join('.')
    if (issue.code === 'unrecognized_keys') {
      const key = (at === '' ? '' : at + '.') + issue.keys[0]
      throw new ConfigError(`${key} in ${file} is not an option${didYouMean(key, YAML_KEYS)}`)
    }
    throw new ConfigError(`${at} in ${file} must be a mapping of options`)
  }

  const values = new Map<string, RawValue>()
  const origin: Origin = { from: 'yaml', file }
  const baseDir = dirname(file)
  for (const option of OPTIONS) {
    const value = lookup(data as Record<string, unknown>, option.key)
    // null (`~`, or an empty value) means "not set here": the default applies.
    if (value === null || value === undefined) continue
    values.set(option.key, {
      value: option.secret ? resolveYamlSecret(value, baseDir, fs, label(option, origin)) : value,
      origin,
    })
  }
  return values
}

function lookup(data: Record<string, unknown>, key: string): unknown {
  let node: unknown = data
  for (const segment of key.split('.')) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<string, unknown>)[segment]
  }
  return node
}

/** `@path` in YAML is relative to the YAML file; a list (hook secrets) may reference per entry. */
function resolveYamlSecret(value: unknown, baseDir: string, fs: ConfigFs, where: string): unknown {
  if (typeof value === 'string') return resolveSecretReference(value, baseDir, fs, where).value
  if (Array.isArray(value)) {
    return value.map((entry) =>
      typeof entry === 'string' ? resolveSecretReference(entry, baseDir, fs, where).value : entry,
    )
  }
  return value
}

// ---------------------------------------------------------------------------------------------
// Validation

/** `GATEWAY_PORT (server.port)` from the environment, `server.port (GATEWAY_PORT) in <file>` from YAML. */
function label(option: OptionSpec, origin: Origin | undefined): string {
  if (origin === undefined) return `${option.env} (${option.key})`
  if (origin.from === 'env') return `${origin.name} (${option.key})`
  return `${option.key} (${option.env}) in ${origin.file}`
}

/** Marks issues that carry no message of their own: those read "must be <expect>". */
const EXPECTED = '\u0000expected'

function show(value: unknown): string {
  const json = JSON.stringify(value) ?? String(value)
  return json.length > 80 ? json.slice(0, 77) + '...' : json
}

function validateOptions(raw: ReadonlyMap<string, RawValue>): OptionValues {
  const values: Record<string, unknown> = {}
  for (const option of OPTIONS as readonly OptionSpec[]) {
    const entry = raw.get(option.key)
    if (entry === undefined) {
      if (option.default === undefined) {
        throw new ConfigError(`${label(option, undefined)} is required: ${option.required}`)
      }
      values[option.key] = option.default
      continue
    }
    const result = option.kind.schema.safeParse(entry.value, { error: () => EXPECTED })
    if (!result.success) {
      const message = result.error.issues[0]?.message ?? EXPECTED
      const problem =
        message === EXPECTED
          ? `must be ${option.kind.expect}` + (option.secret ? '' : `, got ${show(entry.value)}`)
          : message
      throw new ConfigError(`${label(option, entry.origin)} ${problem}`)
    }
    values[option.key] = result.data
  }
  return values as OptionValues
}

const BY_KEY: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((option) => [option.key, option]))

function name(key: keyof OptionValues): string {
  const option = BY_KEY.get(key)!
  return `${option.env} (${option.key})`
}

/** Rules that involve more than one option. */
function checkCombinations(values: OptionValues, raw: ReadonlyMap<string, RawValue>): void {
  const where = (key: keyof OptionValues) => label(BY_KEY.get(key)!, raw.get(key)?.origin)

  checkKeyMaterial(
    values['upstream.jwtSecret'],
    values['upstream.jwtSecretIsBase64'],
    where('upstream.jwtSecret'),
    name('upstream.jwtSecretIsBase64'),
    'sign',
  )
  const inbound = values['jwt.secret']
  if (inbound !== null) {
    checkKeyMaterial(
      inbound,
      values['jwt.secretIsBase64'],
      where('jwt.secret'),
      name('jwt.secretIsBase64'),
      'verify',
    )
  }

  // DESIGN.md "Role mapping": superuser-like roles are never reachable unless listed explicitly.
  const allowed = values['role.allowed']
  if (!values['role.allowPrivileged']) {
    for (const role of allowed) {
      if (isPrivilegedRole(role)) {
        throw new ConfigError(
          `${where('role.allowed')} lists the privileged role "${role}": set GATEWAY_ALLOW_PRIVILEGED_ROLES=true (role.allowPrivileged: true) if that is intended`,
        )
      }
    }
  }
  const allowedSet = new Set(allowed)
  const defaultRole = values['role.default']
  if (!allowedSet.has(defaultRole)) {
    throw new ConfigError(`${where('role.default')} "${defaultRole}" is not in ${name('role.allowed')}`)
  }
  for (const [from, to] of values['role.map']) {
    if (!allowedSet.has(to)) {
      throw new ConfigError(
        `${where('role.map')} maps "${from}" to "${to}", which is not in ${name('role.allowed')}`,
      )
    }
  }

  const hook = values['hook.uri']
  if (hook?.startsWith('pg-functions:') && values['db.url'] === null) {
    throw new ConfigError(`${where('hook.uri')} calls a Postgres function: it needs ${name('db.url')}`)
  }
  if (hook?.startsWith('http') && values['hook.secrets'].length === 0) {
    throw new ConfigError(
      `${name('hook.secrets')} is required for an HTTP hook: requests to it are signed (Standard Webhooks)`,
    )
  }
}

// ---------------------------------------------------------------------------------------------
// Output

function buildConfig(v: OptionValues, source: string | null): Config {
  const claim = v['role.claim']
  return {
    server: {
      host: v['server.host'],
      port: v['server.port'],
      adminHost: v['server.adminHost'],
      adminPort: v['server.adminPort'],
      maxHeaderBytes: v['server.maxHeaderBytes'],
      headersTimeoutMs: v['server.headersTimeoutMs'],
      requestTimeoutMs: v['server.requestTimeoutMs'],
      keepAliveTimeoutMs: v['server.keepAliveTimeoutMs'],
      trustForwardedHeaders: v['server.trustForwardedHeaders'],
    },
    upstream: {
      url: v['upstream.url'],
      jwtSecret: v['upstream.jwtSecret'],
      jwtSecretIsBase64: v['upstream.jwtSecretIsBase64'],
      timeoutMs: v['upstream.timeoutMs'],
      bodyTimeoutMs: v['upstream.bodyTimeoutMs'],
      connectTimeoutMs: v['upstream.connectTimeoutMs'],
      connections: v['upstream.connections'],
    },
    jwt: {
      secret: v['jwt.secret'],
      secretIsBase64: v['jwt.secretIsBase64'],
      jwksUrl: v['jwt.jwksUrl'],
      aud: v['jwt.aud'],
      iss: v['jwt.iss'],
      clockSkewSeconds: v['jwt.clockSkewSeconds'],
      cacheMaxEntries: v['jwt.cacheMaxEntries'],
      jwksMaxAgeSeconds: v['jwt.jwksMaxAgeSeconds'],
      jwksCooldownSeconds: v['jwt.jwksCooldownSeconds'],
      jwksTimeoutMs: v['jwt.jwksTimeoutMs'],
    },
    db: {
      url: v['db.url'],
      poolSize: v['db.poolSize'],
      lookupTimeoutMs: v['db.lookupTimeoutMs'],
      userQuery: v['db.userQuery'],
      sessionQuery: v['db.sessionQuery'],
      notifyChannel: v['db.notifyChannel'],
    },
    claims: {
      cacheMaxEntries: v['claims.cacheMaxEntries'],
      ttlSeconds: v['claims.ttlSeconds'],
      maxStaleSeconds: v['claims.maxStaleSeconds'],
      disconnectedTtlSeconds: v['claims.disconnectedTtlSeconds'],
      onDatabaseDown: v['claims.onDatabaseDown'],
    },
    role: {
      claim,
      claimPath: claim.split('.'),
      map: new Map(v['role.map']),
      allowed: new Set(v['role.allowed']),
      defaultRole: v['role.default'],
      anonRole: v['role.anonRole'],
      allowPrivileged: v['role.allowPrivileged'],
    },
    anonymous: v['anonymous'],
    hook: {
      uri: v['hook.uri'],
      secrets: [...v['hook.secrets']],
      timeoutMs: v['hook.timeoutMs'],
      maxResponseBytes: v['hook.maxResponseBytes'],
    },
    mint: {
      claimsAllowed: v['mint.claimsAllowed'] === null ? null : [...v['mint.claimsAllowed']],
      ttlSeconds: v['mint.ttlSeconds'],
      warnBytes: v['mint.warnBytes'],
      kid: v['mint.kid'],
      cacheMaxEntries: v['mint.cacheMaxEntries'],
    },
    log: { level: v['log.level'], pretty: v['log.pretty'] },
    shutdown: { delayMs: v['shutdown.delayMs'], deadlineMs: v['shutdown.deadlineMs'] },
    source,
  }
}

/** Freezes plain objects and arrays all the way down; Maps and Sets are typed read-only. */
function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value
  if (value instanceof Map || value instanceof Set) return Object.freeze(value)
  for (const child of Object.values(value)) deepFreeze(child)
  return Object.freeze(value)
}

/**
 * The configuration with secrets replaced by `"[set]"`, for the start-up log line. Never log
 * the Config itself: it holds keys and the database password.
 */
export function redactConfig(config: Config): Record<string, unknown> {
  const set = (value: string | null) => (value === null ? null : '[set]')
  return {
    ...config,
    upstream: { ...config.upstream, jwtSecret: '[set]' },
    jwt: { ...config.jwt, secret: set(config.jwt.secret) },
    db: { ...config.db, url: set(config.db.url) },
    role: {
      ...config.role,
      map: Object.fromEntries(config.role.map),
      allowed: [...config.role.allowed],
    },
    hook: { ...config.hook, secrets: config.hook.secrets.map(() => '[set]') },
  }
}
