import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const MODULE = fileURLToPath(new URL('../../dist/src/tick-shape.js', import.meta.url))

/**
 * In a fresh process (the built module; V8's `%HaveSameMap` needs --allow-natives-syntax): with
 * `keep`, keeps a tick entry first. Then brings the map of `{}` to V8's limit of transitions (2,000
 * objects, each with another first property name, as the traffic of a proxy under load does), drops
 * every unused map with two full collections, and takes the next two `nextTick` entries as they are
 * made. Reports whether they share one map, and whether they share the kept entry's.
 */
const SCRIPT = `
  const { createHook } = await import('node:async_hooks')
  const next = () => {
    let entry = null
    const hook = createHook({ init(id, type, trigger, resource) { if (type === 'TickObject' && entry === null) entry = resource } })
    hook.enable()
    process.nextTick(() => {})
    hook.disable()
    return entry
  }
  let kept = null
  if (process.argv[1] === 'keep') {
    const { keepTickShape } = await import(${JSON.stringify(MODULE)})
    const first = keepTickShape()
    if (keepTickShape() !== first) throw new Error('a second call kept another entry')
    kept = await first
  }
  const fill = []
  for (let i = 0; i < 2000; i++) {
    const o = {}
    o['field' + i] = i
    fill.push(o)
  }
  gc()
  gc()
  const a = next()
  const b = next()
  console.log(JSON.stringify({
    entries: [typeof a, typeof b],
    sameMap: %HaveSameMap(a, b),
    sameAsKept: kept === null ? null : %HaveSameMap(kept, a),
  }))
`

function run(mode: 'keep' | 'control'): unknown {
  const child = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', SCRIPT, mode],
    { encoding: 'utf8' },
  )
  expect(child.stderr).toBe('')
  expect(child.status).toBe(0)
  return JSON.parse(child.stdout)
}

describe('keepTickShape (in a fresh process)', () => {
  it('without it: once the maps were dropped, every nextTick entry gets a map of its own', () => {
    expect(run('control')).toEqual({ entries: ['object', 'object'], sameMap: false, sameAsKept: null })
  })

  it('with it: every nextTick entry keeps the map of the entry it holds', () => {
    expect(run('keep')).toEqual({ entries: ['object', 'object'], sameMap: true, sameAsKept: true })
  })
})
