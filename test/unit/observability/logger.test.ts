// Logger: JSON lines are buffered, written by the periodic flush, by flushLogger and flushLoggerSync, none lost.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  type AccessLine,
  createAccessLog,
  createLogger,
  flushLogger,
  flushLoggerSync,
  LOG_BUFFER_BYTES,
  LOG_FLUSH_INTERVAL_MS,
} from '../../../src/observability/logger.js'

const INFO = { level: 'info', pretty: false } as const

let dir: string
let file: string
let fd: number

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gateway-log-'))
  file = join(dir, 'out.log')
  fd = openSync(file, 'a')
})

afterEach(() => {
  closeSync(fd)
  rmSync(dir, { recursive: true, force: true })
})

function written(): { reqId: unknown; msg: unknown }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const parsed = JSON.parse(line) as Record<string, unknown>
      return { reqId: parsed['reqId'], msg: parsed['msg'] }
    })
}

function access(n: number): { reqId: string; msg: string }[] {
  return Array.from({ length: n }, (_, i) => ({ reqId: `r${i}`, msg: 'request' }))
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('createLogger, buffered file descriptor', () => {
  it('holds a few lines back and writes all of them, in order, on flushLogger', async () => {
    const logger = createLogger(INFO, fd)
    for (let i = 0; i < 3; i++) logger.info({ reqId: `r${i}` }, 'request')
    expect(readFileSync(file, 'utf8')).toBe('')
    await flushLogger(logger)
    expect(written()).toEqual(access(3))
  })

  it('flushLoggerSync writes the buffer before it returns', () => {
    const logger = createLogger(INFO, fd)
    for (let i = 0; i < 5; i++) logger.info({ reqId: `r${i}` }, 'request')
    flushLoggerSync(logger)
    expect(written()).toEqual(access(5))
  })

  it('a quiet logger still writes its line within the flush interval', async () => {
    const logger = createLogger(INFO, fd)
    logger.info({ reqId: 'r0' }, 'request')
    const started = Date.now()
    await until(() => readFileSync(file, 'utf8') !== '', LOG_FLUSH_INTERVAL_MS * 8)
    expect(Date.now() - started).toBeLessThan(LOG_FLUSH_INTERVAL_MS * 8)
    expect(written()).toEqual(access(1))
  })

  it('writes without a flush once the buffer passes its size, and loses nothing under a burst', async () => {
    const logger = createLogger(INFO, fd)
    // Each line is over 100 bytes: 2,000 lines are several buffers' worth, and the first periodic
    // flush is LOG_FLUSH_INTERVAL_MS away, so a write within 100 ms comes from the size alone.
    for (let i = 0; i < 2000; i++) logger.info({ reqId: `r${i}` }, 'request')
    await until(() => readFileSync(file, 'utf8').length >= LOG_BUFFER_BYTES, 100)
    await flushLogger(logger)
    expect(written()).toEqual(access(2000))
  })

  it('lines below the level cost no write', async () => {
    const logger = createLogger({ level: 'warn', pretty: false }, fd)
    logger.info({ reqId: 'quiet' }, 'request')
    logger.warn({ reqId: 'loud' }, 'request')
    await flushLogger(logger)
    expect(written()).toEqual([{ reqId: 'loud', msg: 'request' }])
  })
})

describe('flushLogger and flushLoggerSync on an unbuffered stream', () => {
  it('return at once and keep every line', async () => {
    const lines: string[] = []
    const logger = createLogger(INFO, {
      write(line: string) {
        lines.push(line)
      },
    })
    logger.info({ reqId: 'r0' }, 'request')
    await flushLogger(logger)
    flushLoggerSync(logger)
    expect(lines.map((l) => (JSON.parse(l) as { reqId: string }).reqId)).toEqual(['r0'])
  })
})

describe('the time of a line', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('is the ISO 8601 time to the millisecond, across milliseconds, seconds and days', () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const times: string[] = []
    const logger = createLogger(INFO, {
      write(line: string) {
        times.push((JSON.parse(line) as { time: string }).time)
      },
    })
    const instants = [
      Date.UTC(2026, 0, 2, 3, 4, 5, 0),
      Date.UTC(2026, 0, 2, 3, 4, 5, 7),
      Date.UTC(2026, 0, 2, 3, 4, 5, 42),
      Date.UTC(2026, 0, 2, 3, 4, 5, 999),
      Date.UTC(2026, 0, 2, 3, 4, 6, 1),
      Date.UTC(2026, 0, 2, 23, 59, 59, 500),
      Date.UTC(2026, 0, 3, 0, 0, 0, 0),
      Date.UTC(2026, 0, 2, 3, 4, 5, 100), // the clock stepped back
    ]
    for (const t of instants) {
      vi.setSystemTime(t)
      logger.info('tick')
    }
    expect(times).toEqual(instants.map((t) => new Date(t).toISOString()))
  })
})

describe('createAccessLog', () => {
  const lines: AccessLine[] = [
    {
      reqId: '6f1c4d52-58b5-4a7e-9a57-0e2d8f5b3c11',
      method: 'GET',
      path: '/todos',
      status: 200,
      durationMs: 1.234,
      upstreamMs: 0.987,
      role: 'authenticated',
      code: null,
    },
    {
      reqId: 'client-"id"\\x',
      method: 'PATCH',
      path: '/caf\u00e9/\u00fcber/\u65e5\u672c/"quoted"\\back\u0001\u001f',
      status: 503,
      durationMs: 12,
      upstreamMs: null,
      role: null,
      code: 'GW503',
    },
    {
      reqId: 'back\\slash',
      method: 'M-SEARCH',
      path: '',
      status: 499,
      durationMs: Number.NaN,
      upstreamMs: Number.POSITIVE_INFINITY,
      role: 'weird\trole',
      code: 'PGRST301',
    },
    {
      reqId: 'r2',
      method: undefined,
      path: '/',
      status: 0,
      durationMs: 0,
      upstreamMs: 0,
      role: 'a',
      code: null,
    },
    // Millisecond figures as the pipeline rounds them (3 decimals), and a few it never produces.
    ...[
      0.001,
      0.01,
      0.05,
      0.1,
      0.12,
      0.5,
      1,
      1.2,
      1.05,
      12.345,
      99.999,
      100,
      1000.001,
      123456.789,
      4294967.296,
      -1.5,
      1e-7,
      2 ** 60,
      0.1 + 0.2,
      ...Array.from({ length: 200 }, (_, i) => Math.round(((i * 7919) % 100_003) * 1.37) / 1000),
    ].map((ms, i) => ({
      reqId: `ms${i}`,
      method: 'GET',
      path: '/',
      status: 200,
      durationMs: ms,
      upstreamMs: ms / 2,
      role: null,
      code: null,
    })),
  ]

  it("writes byte for byte what logger.info(line, 'request') writes, escapes and odd numbers included", async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-03-04T05:06:07.089Z') })
    try {
      const logger = createLogger(INFO, fd)
      const access = createAccessLog(logger)
      for (const line of lines) {
        access(line)
        logger.info(line, 'request')
      }
      await flushLogger(logger)
    } finally {
      vi.useRealTimers()
    }
    const out = readFileSync(file, 'utf8').split('\n')
    expect(out).toHaveLength(lines.length * 2 + 1)
    for (let i = 0; i < lines.length; i++) expect(out[2 * i]).toBe(out[2 * i + 1])
    expect(out[0]).toBe(
      '{"level":30,"time":"2026-03-04T05:06:07.089Z","service":"postgrest-gateway",' +
        '"reqId":"6f1c4d52-58b5-4a7e-9a57-0e2d8f5b3c11","method":"GET","path":"/todos","status":200,' +
        '"durationMs":1.234,"upstreamMs":0.987,"role":"authenticated","code":null,"msg":"request"}',
    )
  })

  it('stays byte for byte equal to pino across many buffers of lines, in order', async () => {
    const logger = createLogger(INFO, fd)
    const access = createAccessLog(logger)
    const count = 3000 // ~1.6 MB with pino's twins: the destination's buffers fill and turn over
    for (let i = 0; i < count; i++) {
      const line: AccessLine = {
        reqId: `id-${i}`,
        method: i % 7 === 0 ? 'DELETE' : 'GET',
        path: `/items/${'x'.repeat(i % 300)}`,
        status: 200 + (i % 5),
        durationMs: (i * 37) / 1000,
        upstreamMs: i % 3 === 0 ? null : i / 1000,
        role: i % 11 === 0 ? null : 'authenticated',
        code: i % 13 === 0 ? 'GW503' : null,
      }
      access(line)
      logger.info(line, 'request')
    }
    await flushLogger(logger)
    const out = readFileSync(file, 'utf8').split('\n')
    expect(out).toHaveLength(count * 2 + 1)
    for (let i = 0; i < count; i++) {
      // The time may move on between the two lines of a pair; everything else is the same.
      const [a, b] = [out[2 * i]!, out[2 * i + 1]!].map((l) => l.replace(/"time":"[^"]*"/, '"time":""'))
      expect(a).toBe(b)
      expect(JSON.parse(out[2 * i]!).reqId).toBe(`id-${i}`)
    }
  })

  it('writes nothing below the info level, and follows a level change', async () => {
    const logger = createLogger({ level: 'warn', pretty: false }, fd)
    const access = createAccessLog(logger)
    access(lines[0]!)
    await flushLogger(logger)
    expect(readFileSync(file, 'utf8')).toBe('')
    logger.level = 'info'
    access(lines[0]!)
    await flushLogger(logger)
    expect(written()).toEqual([{ reqId: lines[0]!.reqId, msg: 'request' }])
  })
})
