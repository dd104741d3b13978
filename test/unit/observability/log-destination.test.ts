// Logger destination: buffered lines reach a real pipe whole and in order, slow reader and full pipe included.
import { execFileSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createLogDestination } from '../../../src/observability/logger.js'

let dir: string
let reader: number
let writer: number

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gateway-pipe-'))
  const fifo = join(dir, 'fifo')
  execFileSync('mkfifo', [fifo])
  // The read end first (non-blocking, so the open returns), then a non-blocking write end: a full
  // pipe answers EAGAIN and a nearly full one a partial write, the cases the destination handles.
  reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)
})

afterEach(() => {
  closeSync(writer)
  closeSync(reader)
  rmSync(dir, { recursive: true, force: true })
})

const chunk = Buffer.alloc(65536)
let received = ''

/** Reads what is in the pipe now, at most `max` bytes. */
function drain(max = Number.POSITIVE_INFINITY): number {
  let total = 0
  while (total < max) {
    let n: number
    try {
      n = readSync(reader, chunk, 0, Math.min(chunk.length, max - total), null)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break
      throw err
    }
    if (n === 0) break
    received += chunk.toString('latin1', 0, n)
    total += n
  }
  return total
}

function lines(from: number, to: number): string[] {
  const out: string[] = []
  for (let i = from; i < to; i++) out.push(`{"n":${i},"pad":"${'x'.repeat(100)}"}\n`)
  return out
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeEach(() => {
  received = ''
})

describe('createLogDestination on a pipe', () => {
  it('a slow reader gets every line, in order, through partial writes and EAGAIN', async () => {
    const destination = createLogDestination({ fd: writer, bufferBytes: 4096 })
    const all = lines(0, 5000) // ~590 KB: nine times the pipe's 64 KiB
    // Lines arrive in bursts while the reader takes 8 KiB every few milliseconds.
    const slowReader = setInterval(() => drain(8192), 2)
    try {
      for (let i = 0; i < all.length; i += 250) {
        for (let j = i; j < i + 250; j++) destination.write(all[j]!)
        await sleep(1)
      }
      await destination.flush()
    } finally {
      clearInterval(slowReader)
    }
    drain()
    expect(received).toBe(all.join(''))
    expect(destination.dropped).toBe(0)
  })

  it('writes a burst without a flush once the buffer size is reached, and a few lines on the timer', async () => {
    const destination = createLogDestination({ fd: writer, bufferBytes: 4096, intervalMs: 50 })
    const burst = lines(0, 40) // ~4.7 KB
    for (const line of burst) destination.write(line)
    await sleep(20)
    drain()
    // The lines up to the one that reached 4096 bytes are written; the rest wait for the timer.
    const first = burst.findIndex((_, i) => burst.slice(0, i + 1).join('').length >= 4096) + 1
    expect(received).toBe(burst.slice(0, first).join(''))
    const few = lines(40, 43)
    for (const line of few) destination.write(line)
    await sleep(20)
    expect(drain()).toBe(0) // held back: under the size, before the timer
    await sleep(80)
    drain()
    expect(received).toBe([...burst, ...few].join(''))
  })

  it('drops lines over the bound, counts them, and says so in the log once stdout keeps up', async () => {
    const destination = createLogDestination({ fd: writer, bufferBytes: 1024, maxBuffered: 100_000 })
    const all = lines(0, 3000) // ~350 KB into a pipe nobody reads: 64 KiB fit, 100 KB buffer
    for (const line of all) destination.write(line)
    await sleep(50)
    expect(destination.dropped).toBeGreaterThan(0)
    const dropped = destination.dropped
    const flushed = destination.flush()
    const reading = setInterval(() => drain(), 2)
    await flushed
    clearInterval(reading)
    drain()
    const got = received.split('\n').filter((l) => l !== '')
    const kept = all.length - dropped
    // What is kept is the first lines, whole and in order; then one line with the count.
    expect(got.slice(0, kept)).toEqual(all.slice(0, kept).map((l) => l.slice(0, -1)))
    expect(got.length).toBe(kept + 1)
    const report = JSON.parse(got[kept]!) as Record<string, unknown>
    expect(report).toMatchObject({ level: 40, dropped, msg: 'log lines dropped: stdout did not keep up' })
    expect(destination.dropped).toBe(dropped)
  })

  it('flushSync writes everything buffered before it returns', () => {
    const destination = createLogDestination({ fd: writer })
    const few = lines(0, 10)
    for (const line of few) destination.write(line)
    expect(drain()).toBe(0)
    destination.flushSync()
    drain()
    expect(received).toBe(few.join(''))
  })
})
