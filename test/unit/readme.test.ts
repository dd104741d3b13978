// The README's generated tables (options, errors) must match the code they come from.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { renderOptionsTable } from '../../src/config/index.js'
import { ERRORS, renderErrorTable } from '../../src/errors/index.js'

const README = fileURLToPath(new URL('../../README.md', import.meta.url))

function section(text: string, start: string, end: string, body: string): string {
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  expect(from, start).toBeGreaterThan(-1)
  expect(to, end).toBeGreaterThan(from)
  return text.slice(0, from + start.length) + '\n' + body + text.slice(to)
}

describe('README.md', () => {
  it('carries the option table generated from OPTIONS and the error table generated from ERRORS', () => {
    const readme = readFileSync(README, 'utf8')
    let expected = section(
      readme,
      '<!-- options:start (generated from src/config/schema.ts OPTIONS) -->',
      '<!-- options:end -->',
      renderOptionsTable(),
    )
    expected = section(
      expected,
      '<!-- errors:start (generated from src/errors/codes.ts ERRORS) -->',
      '<!-- errors:end -->',
      renderErrorTable(),
    )
    // To regenerate: UPDATE_README=1 npx vitest run test/unit/readme.test.ts
    if (process.env['UPDATE_README'] === '1') writeFileSync(README, expected)
    expect(readme).toBe(expected)
  })

  it('lists every error code with its status', () => {
    const table = renderErrorTable()
    for (const spec of Object.values(ERRORS)) {
      expect(table).toContain(`| \`${spec.code}\` | ${spec.status} |`)
    }
  })

  it('shows the two commands and the test command CI runs', () => {
    const readme = readFileSync(README, 'utf8')
    expect(readme).toContain('npm ci && npm run demo')
    expect(readme).toContain('npm ci && npm test')
    expect(readFileSync(fileURLToPath(new URL('../../.ci/run', import.meta.url)), 'utf8')).toContain(
      'npm test',
    )
  })
})
