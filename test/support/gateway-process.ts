// Test support: the built gateway (dist/src/main.js) as a child process, for end-to-end tests and benchmarks.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE_FLAGS } from '../../src/node-flags.js'
import { repoRoot } from './database.js'
import { freePort } from './postgres.js'

export interface GatewayProcessOptions {
  /** GATEWAY_* variables (DESIGN.md); ports and hosts are chosen here unless given. */
  env: Record<string, string>
  args?: readonly string[]
  /** Longest wait for `/live` to answer 200. */
  readyTimeoutMs?: number
  /** Wait for `/ready` instead of `/live` (upstream reachable, keys loaded, database listening). */
  waitFor?: 'live' | 'ready'
}

export interface GatewayProcess {
  /** Proxy listener, e.g. `http://127.0.0.1:40123`. */
  readonly url: string
  /** Admin listener (`/live`, `/ready`, `/metrics`). */
  readonly adminUrl: string
  readonly pid: number
  readonly process: ChildProcess
  stdout(): string
  stderr(): string
  /** Sends `signal` (default SIGTERM) and waits for the exit; SIGKILL after `timeoutMs`. */
  stop(
    signal?: NodeJS.Signals,
    timeoutMs?: number,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Resident set size from /proc/<pid>/status (Linux), 0 when unavailable. */
  rssKb(): number
}

const MAX_CAPTURE = 8 * 1024 * 1024
const running = new Set<ChildProcess>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL')
  })
}

/** The entry point `npm test` builds before running (tsconfig.build.json). */
export function gatewayEntry(): string {
  return join(repoRoot(), 'dist', 'src', 'main.js')
}

async function waitForHttp(
  url: string,
  child: ChildProcess,
  timeoutMs: number,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `gateway exited (code ${child.exitCode}, signal ${child.signalCode}) before ${url} answered:\n${stderr()}`,
      )
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.status === 200) return
      last = `status ${res.status}`
    } catch (err) {
      last = (err as Error).message
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`gateway: ${url} did not answer 200 within ${timeoutMs} ms (${last}):\n${stderr()}`)
}

async function startOnce(options: GatewayProcessOptions): Promise<GatewayProcess> {
  const entry = gatewayEntry()
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first (npm test does)`)
  const port = options.env['GATEWAY_PORT'] ?? String(await freePort())
  const adminPort = options.env['GATEWAY_ADMIN_PORT'] ?? String(await freePort())
  const env: Record<string, string> = {}
  // The child sees no GATEWAY_* variable from the test runner's own environment, only the test's.
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith('GATEWAY_')) env[name] = value
  }
  Object.assign(env, { GATEWAY_HOST: '127.0.0.1', GATEWAY_ADMIN_HOST: '127.0.0.1' }, options.env, {
    GATEWAY_PORT: port,
    GATEWAY_ADMIN_PORT: adminPort,
  })
  // Started as `npm start` and the image start it: with the gateway's Node flags.
  const child = spawn(process.execPath, [...NODE_FLAGS, entry, ...(options.args ?? [])], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  installExitHook()
  running.add(child)
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    if (out.length < MAX_CAPTURE) out += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (err.length < MAX_CAPTURE) err += chunk
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child)
      resolve({ code, signal })
    })
  })
  const url = `http://127.0.0.1:${port}`
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const stdout = () => out
  const stderr = () => err
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    try {
      return await exited
    } finally {
      clearTimeout(timer)
    }
  }
  try {
    await waitForHttp(
      `${adminUrl}/${options.waitFor ?? 'live'}`,
      child,
      options.readyTimeoutMs ?? 15_000,
      () => err + out,
    )
  } catch (error) {
    await stop('SIGKILL')
    throw error
  }
  return {
    url,
    adminUrl,
    pid: child.pid!,
    process: child,
    stdout,
    stderr,
    stop,
    rssKb() {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8')
        const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
        return match === null ? 0 : Number(match[1])
      } catch {
        return 0
      }
    },
  }
}

/**
 * Spawns `node dist/src/main.js` with the given environment on free ports (127.0.0.1) and waits
 * until its admin `/live` (or `/ready`) answers 200; the error carries the captured output. A port
 * taken between choosing and binding is retried with new ports. Processes still running when the
 * test process exits are killed.
 */
export async function startGateway(options: GatewayProcessOptions): Promise<GatewayProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options)
    } catch (err) {
      const fixedPorts =
        options.env['GATEWAY_PORT'] !== undefined && options.env['GATEWAY_ADMIN_PORT'] !== undefined
      if (attempt >= 3 || fixedPorts || !String((err as Error).message).includes('EADDRINUSE')) throw err
    }
  }
}
