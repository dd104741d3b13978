// Test support: a real `postgrest` binary (POSTGREST_BIN or PATH) behind the gateway, when one is installed.
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { freePort } from './postgres.js'
import type { StandInOptions } from './postgrest-stand-in.js'

export interface PostgrestProcess {
  readonly url: string
  readonly port: number
  readonly adminUrl: string
  readonly pid: number
  stderr(): string
  close(): Promise<void>
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `POSTGREST_BIN`, else `postgrest` on PATH, else null (tests then skip and say why). */
export function findPostgrestBinary(): string | null {
  const explicit = process.env['POSTGREST_BIN']
  if (explicit !== undefined && explicit !== '') return isExecutable(explicit) ? explicit : null
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'postgrest')
    if (isExecutable(candidate)) return candidate
  }
  return null
}

let skipWarned = false

/** Prints once per process why PostgREST-binary tests are skipped; returns the binary or null. */
export function postgrestBinaryOrWarn(): string | null {
  const bin = findPostgrestBinary()
  if (bin === null && !skipWarned) {
    skipWarned = true
    console.warn(
      'Skipping tests against a real PostgREST: no `postgrest` on PATH and POSTGREST_BIN is not set ' +
        '(https://github.com/PostgREST/postgrest/releases).',
    )
  }
  return bin
}

/** A value in PostgREST's configuration syntax: a double-quoted string with `"` and `\` escaped. */
function quote(value: string): string {
  return JSON.stringify(value)
}

/**
 * Writes a configuration file from the stand-in's options (same meaning) and starts PostgREST on
 * free ports; resolves once its admin `/ready` answers 200 (schema cache loaded).
 */
export async function startPostgrest(
  options: StandInOptions & { bin?: string; readyTimeoutMs?: number },
): Promise<PostgrestProcess> {
  const bin = options.bin ?? findPostgrestBinary()
  if (bin === null) throw new Error('no postgrest binary (set POSTGREST_BIN or put postgrest on PATH)')
  const port = options.port !== undefined && options.port !== 0 ? options.port : await freePort()
  const adminPort = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'gateway-postgrest-'))
  const lines = [
    `db-uri = ${quote(options.dbUrl)}`,
    `db-schemas = ${quote(options.schema ?? 'public')}`,
    `server-host = ${quote(options.host ?? '127.0.0.1')}`,
    `server-port = ${port}`,
    `admin-server-host = ${quote('127.0.0.1')}`,
    `admin-server-port = ${adminPort}`,
    `jwt-role-claim-key = ${quote(options.roleClaimKey ?? '.role')}`,
    `log-level = ${quote('error')}`,
  ]
  if (options.anonRole !== null) lines.push(`db-anon-role = ${quote(options.anonRole)}`)
  if (options.jwtSecret !== null) lines.push(`jwt-secret = ${quote(options.jwtSecret)}`)
  if (options.jwtSecretIsBase64 === true) lines.push('jwt-secret-is-base64 = true')
  if (options.jwtAud !== undefined && options.jwtAud !== null)
    lines.push(`jwt-aud = ${quote(options.jwtAud)}`)
  const configFile = join(dir, 'postgrest.conf')
  writeFileSync(configFile, `${lines.join('\n')}\n`, { mode: 0o600 })

  const child: ChildProcess = spawn(bin, [configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
    rmSync(dir, { recursive: true, force: true })
  }
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000)
  for (;;) {
    if (child.exitCode !== null) {
      await close()
      throw new Error(`postgrest exited with code ${child.exitCode}:\n${err}`)
    }
    try {
      const res = await fetch(`${adminUrl}/ready`, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close()
      throw new Error(`postgrest did not become ready:\n${err}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    adminUrl,
    pid: child.pid!,
    stderr: () => err,
    close,
  }
}
