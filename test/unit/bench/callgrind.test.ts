// bench:count reads callgrind's dumps: the instruction total and which file is the main thread's last dump.
import { describe, expect, it } from 'vitest'
import { instructions, latestMainThreadDump } from '../../../bench/callgrind.js'

// The head of a dump callgrind 3.19 wrote for `callgrind_control -d` (format version 1).
const DUMP = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 21739
cmd:  node --single-threaded-gc dist/bench/servers/bare-proxy.js
part: 1
thread: 1

desc: Timerange: Basic block 0 - 2276648064
desc: Trigger: dump

positions: line
events: Ir
summary: 1709158920


ob=(8) /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
fl=(160) ???
fn=(3936) operator delete[](void*)
0 20336
totals: 1712982905
`

describe('instructions', () => {
  it('reads the summary line, the first total in the dump', () => {
    expect(instructions(DUMP)).toBe(1_709_158_920)
  })

  it('falls back to the totals line when a dump has no summary', () => {
    expect(instructions(DUMP.replace('summary: 1709158920\n', ''))).toBe(1_712_982_905)
  })

  it('refuses a file that is not a dump', () => {
    expect(() => instructions('# callgrind format\nversion: 1\n')).toThrow(
      'no summary or totals line in the callgrind dump',
    )
  })
})

describe('latestMainThreadDump', () => {
  it('picks the highest-numbered dump of thread 01 of the given output file', () => {
    const files = [
      'off',
      'off-01',
      'off-02',
      'off.1-01',
      'off.1-02',
      'off.2-02',
      'off.10-01',
      'off.9-01',
      'on.11-01',
    ]
    expect(latestMainThreadDump(files, 'off')).toBe('off.10-01')
  })

  it('answers null when the main thread has no numbered dump yet', () => {
    expect(latestMainThreadDump(['off-01', 'off.1-02', 'bare.1-01'], 'off')).toBeNull()
  })
})
