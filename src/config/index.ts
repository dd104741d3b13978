// Configuration: schema + loading (file, env, @file secrets) -> one frozen Config, and the command line.
export { type Command, HELP_TEXT, type ParsedArgs, parseArgs, readVersion } from './cli.js'
export type { Environment } from './env.js'
export { type LoadConfigOptions, loadConfig, redactConfig } from './load.js'
export {
  ConfigError,
  isPrivilegedRole,
  OPTIONS,
  type OptionKey,
  type OptionSpec,
  PRIVILEGED_ROLES,
  parseClaimPath,
  renderOptionsTable,
} from './schema.js'
export type { ConfigFs } from './secrets.js'
export * from './types.js'
