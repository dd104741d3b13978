// The gateway's Node flags: the young generation keeps its 16 MB through a pause in traffic.
import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { NODE_FLAGS } from '../../src/node-flags.js'

/**
 * Grows the young generation with short-lived objects, pauses 5.5 s (V8 then sees little
 * allocation), runs a full collection and prints the young generation's size in MB before and after.
 */
const SCRIPT = `
const v8 = require('node:v8')
const youngMb = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20
let keep = []
const until = Date.now() + 300
while (Date.now() < until) { for (let i = 0; i < 1000; i++) keep.push({ i, a: [i] }); if (keep.length > 20000) keep = [] }
const grown = youngMb()
setTimeout(() => { gc(); console.log(JSON.stringify({ grown, afterPause: youngMb() })) }, 5500)
`

function youngGeneration(flags: readonly string[]): Promise<{ grown: number; afterPause: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, '-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0 || err !== '') reject(new Error(`exit ${code}: ${err}`))
      else resolve(JSON.parse(out))
    })
  })
}

describe('NODE_FLAGS', () => {
  it('keep at least 16 MB of young generation after a pause, which V8 otherwise shrinks to 1 MB', async () => {
    const withoutMin = NODE_FLAGS.filter((flag) => !flag.startsWith('--min-semi-space-size'))
    expect(withoutMin).toHaveLength(NODE_FLAGS.length - 1)
    const [gateway, maxOnly] = await Promise.all([youngGeneration(NODE_FLAGS), youngGeneration(withoutMin)])
    expect(gateway.grown).toBe(32)
    expect(gateway.afterPause).toBeGreaterThanOrEqual(16)
    // The same run with only the maximum set: V8 shrinks it, which the flag is there to prevent.
    expect(maxOnly).toEqual({ grown: 32, afterPause: 1 })
  }, 20_000)
})
