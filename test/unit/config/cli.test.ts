import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigError, HELP_TEXT, OPTIONS, parseArgs, readVersion } from '../../../src/config/index.js'

function refusal(argv: string[]): string {
  try {
    parseArgs(argv)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as Error).message
  }
  throw new Error('parseArgs did not throw')
}

describe('parseArgs', () => {
  it('serves by default', () => {
    expect(parseArgs([])).toEqual({ command: 'serve', configPath: null })
    expect(parseArgs(['serve'])).toEqual({ command: 'serve', configPath: null })
  })

  it('reads --config in both spellings, around a subcommand', () => {
    expect(parseArgs(['--config', '/etc/gw.yaml'])).toEqual({ command: 'serve', configPath: '/etc/gw.yaml' })
    expect(parseArgs(['--config=gw.yaml', 'jwks'])).toEqual({ command: 'jwks', configPath: 'gw.yaml' })
    expect(parseArgs(['jwks', '--config', 'gw.yaml'])).toEqual({ command: 'jwks', configPath: 'gw.yaml' })
  })

  it('answers help and version, help first', () => {
    expect(parseArgs(['-h'])).toEqual({ command: 'help', configPath: null })
    expect(parseArgs(['--help', 'jwks'])).toEqual({ command: 'help', configPath: null })
    expect(parseArgs(['help'])).toEqual({ command: 'help', configPath: null })
    expect(parseArgs(['-v'])).toEqual({ command: 'version', configPath: null })
    expect(parseArgs(['--version', '--config=x.yaml'])).toEqual({ command: 'version', configPath: 'x.yaml' })
    expect(parseArgs(['-v', '-h'])).toEqual({ command: 'help', configPath: null })
  })

  it('refuses unknown arguments and malformed --config', () => {
    expect(refusal(['--port', '80'])).toBe('unknown argument "--port"; see --help')
    expect(refusal(['start'])).toBe('unknown argument "start"; see --help')
    expect(refusal(['--config'])).toBe('--config needs a path: --config <path>')
    expect(refusal(['--config='])).toBe('--config needs a path: --config <path>')
    expect(refusal(['--config', '--help'])).toBe('--config needs a path: --config <path>')
    expect(refusal(['--config=a.yaml', '--config', 'b.yaml'])).toBe('--config is given twice')
    expect(refusal(['serve', 'jwks'])).toBe('only one command may be given, got serve and jwks')
  })
})

describe('HELP_TEXT', () => {
  it('names the commands, --config and every environment variable', () => {
    expect(HELP_TEXT).toMatch(/^Usage: postgrest-gateway \[command\] \[--config <path>\]\n/)
    for (const word of ['serve', 'jwks', '--config <path>', 'docs/configuration.md', 'GATEWAY_CONFIG']) {
      expect(HELP_TEXT).toContain(word)
    }
    const words = new Set(HELP_TEXT.split(/\s+/))
    for (const option of OPTIONS) expect(words.has(option.env), option.env).toBe(true)
    for (const line of HELP_TEXT.split('\n')) expect(line.length).toBeLessThanOrEqual(100)
  })
})

describe('readVersion', () => {
  it('reads the version of package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
    expect(readVersion()).toBe(pkg.version)
  })
})
