import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import {
  type Config,
  DEFAULT_SESSION_QUERY,
  DEFAULT_USER_QUERY,
  loadConfig,
  OPTIONS,
  renderOptionsTable,
} from '../../../src/config/index.js'
import { memoryFs, SECRET } from './support.js'

const EXAMPLE = fileURLToPath(new URL('../../../config/gateway.example.yaml', import.meta.url))
const DOCS = fileURLToPath(new URL('../../../docs/configuration.md', import.meta.url))
const START = '<!-- options:start (generated from src/config/schema.ts OPTIONS) -->\n'
const END = '<!-- options:end -->'

describe('docs/configuration.md', () => {
  it('carries the option table generated from OPTIONS', () => {
    const docs = readFileSync(DOCS, 'utf8')
    const from = docs.indexOf(START)
    const to = docs.indexOf(END)
    expect(from).toBeGreaterThan(-1)
    expect(to).toBeGreaterThan(from)
    const expected = docs.slice(0, from + START.length) + renderOptionsTable() + docs.slice(to)
    // To regenerate after changing OPTIONS: UPDATE_CONFIG_DOCS=1 npx vitest run test/unit/config/docs.test.ts
    if (process.env['UPDATE_CONFIG_DOCS'] === '1') writeFileSync(DOCS, expected)
    expect(docs).toBe(expected)
  })

  it('lists every option once by env name and YAML key', () => {
    const table = renderOptionsTable()
    for (const option of OPTIONS) {
      expect(table.split(`| \`${option.env}\` | \`${option.key}\` |`)).toHaveLength(2)
    }
  })
})

describe('config/gateway.example.yaml', () => {
  const text = readFileSync(EXAMPLE, 'utf8')

  it('sets every option', () => {
    const data = parse(text) as Record<string, Record<string, unknown>>
    for (const option of OPTIONS) {
      const [head, leaf] = option.key.split('.') as [string, string | undefined]
      const present = leaf === undefined ? head in data : leaf in (data[head] ?? {})
      expect(present, option.key).toBe(true)
    }
  })

  it('loads into the defaults, secrets read from files', () => {
    const jwks = '{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}'
    const config: Config = loadConfig({
      argv: ['--config', '/etc/gateway/gateway.yaml'],
      env: {},
      fs: memoryFs({
        '/etc/gateway/gateway.yaml': text,
        '/run/secrets/upstream-jwt-secret': SECRET + '\n',
        '/run/secrets/jwt-secret': jwks + '\n',
        '/run/secrets/db-url': 'postgres://gateway:pw@db:5432/postgres\n',
      }),
    })
    expect(config.source).toBe('/etc/gateway/gateway.yaml')
    expect(config.upstream.jwtSecret).toBe(SECRET)
    expect(config.jwt.secret).toBe(jwks)
    expect(config.db).toEqual({
      url: 'postgres://gateway:pw@db:5432/postgres',
      poolSize: 4,
      lookupTimeoutMs: 2000,
      userQuery: DEFAULT_USER_QUERY,
      sessionQuery: DEFAULT_SESSION_QUERY,
      notifyChannel: 'postgrest_gateway',
    })
    // Every non-secret value in the example is the default.
    for (const option of OPTIONS) {
      if (option.secret) continue
      const [head, leaf] = option.key.split('.') as [string, string | undefined]
      const section = (config as unknown as Record<string, Record<string, unknown>>)[head]!
      const value = leaf === undefined ? section : section[leaf === 'default' ? 'defaultRole' : leaf]
      expect(value instanceof Set ? [...value] : value, option.key).toEqual(option.default)
    }
  })
})
