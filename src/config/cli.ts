// Command line: which command runs and where the YAML file is, before configuration is loaded.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ConfigError, LOADER_ENV, OPTIONS } from './schema.js'

export type Command = 'serve' | 'jwks' | 'help' | 'version'

export interface ParsedArgs {
  readonly command: Command
  readonly configPath: string | null
}

const SUBCOMMANDS: ReadonlySet<string> = new Set(['serve', 'jwks', 'help', 'version'])

/**
 * Parses the arguments after the script name. `-h`/`--help` wins over everything else, then
 * `-v`/`--version`, then the subcommand (default `serve`).
 */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  let subcommand: Command | null = null
  let configPath: string | null = null
  let help = false
  let version = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '-h' || arg === '--help') {
      help = true
    } else if (arg === '-v' || arg === '--version') {
      version = true
    } else if (arg === '--config' || arg.startsWith('--config=')) {
      const value = arg === '--config' ? argv[++i] : arg.slice('--config='.length)
      if (value === undefined || value === '' || (arg === '--config' && value.startsWith('-'))) {
        throw new ConfigError('--config needs a path: --config <path>')
      }
      if (configPath !== null) throw new ConfigError('--config is given twice')
      configPath = value
    } else if (SUBCOMMANDS.has(arg) && subcommand === null) {
      subcommand = arg as Command
    } else if (SUBCOMMANDS.has(arg)) {
      throw new ConfigError(`only one command may be given, got ${subcommand} and ${arg}`)
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)}; see --help`)
    }
  }
  const command: Command = help ? 'help' : version ? 'version' : (subcommand ?? 'serve')
  return { command, configPath }
}

function envList(): string {
  const names = [...LOADER_ENV.map((entry) => entry.env), ...OPTIONS.map((option) => option.env)]
  const lines: string[] = []
  let line = ' '
  for (const name of names) {
    if (line.length + name.length + 1 > 100) {
      lines.push(line)
      line = ' '
    }
    line += ' ' + name
  }
  lines.push(line)
  return lines.join('\n')
}

/** `--help` output. */
export const HELP_TEXT = `Usage: postgrest-gateway [command] [--config <path>]

A reverse proxy for PostgREST: verifies JWTs, reads fresh claims from PostgreSQL, maps roles and
mints tokens PostgREST trusts.

Commands:
  serve            run the gateway (default)
  jwks             print the public JWKS of the minting key, for PostgREST's jwt-secret
  help             print this text (also -h, --help)
  version          print the version (also -v, --version)

Options:
  --config <path>  YAML configuration file (or GATEWAY_CONFIG=<path>)

Configuration: defaults < YAML file < environment variables. Secrets (GATEWAY_JWT_SECRET,
GATEWAY_UPSTREAM_JWT_SECRET, GATEWAY_DB_URL, GATEWAY_HOOK_SECRETS) may be @/path or come from a
<NAME>_FILE variable. GATEWAY_UPSTREAM_JWT_SECRET is required. Every option, its YAML key, default
and meaning: docs/configuration.md and config/gateway.example.yaml.

Environment variables:
${envList()}
`

/**
 * The package version, from the package.json above this module: `src/config/` when run from
 * source, `dist/src/config/` when built.
 */
export function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      if (
        typeof pkg === 'object' &&
        pkg !== null &&
        'name' in pkg &&
        pkg.name === 'postgrest-gateway' &&
        'version' in pkg &&
        typeof pkg.version === 'string'
      ) {
        return pkg.version
      }
    } catch {
      // No package.json here (or not ours): keep walking up.
    }
    const parent = dirname(dir)
    if (parent === dir)
      throw new Error('package.json of postgrest-gateway not found above ' + import.meta.url)
    dir = parent
  }
}
