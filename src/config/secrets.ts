// Configuration secrets: `@/path` and `*_FILE` indirection, and the shape checks on keys, before any stage is built.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { ConfigError } from './schema.js'

/** File access of the loader; injectable so tests and reloads need no real files. */
export interface ConfigFs {
  readFile(path: string): string
}

export const nodeFs: ConfigFs = {
  readFile: (path) => readFileSync(path, 'utf8'),
}

/**
 * Reads a secret file the way PostgREST reads `@file` values and Kubernetes mounts Secrets:
 * the content without its trailing line break(s).
 */
export function readSecretFile(fs: ConfigFs, path: string, label: string): string {
  let content: string
  try {
    content = fs.readFile(path)
  } catch (err) {
    throw new ConfigError(`${label} cannot read ${path}: ${describeFsError(err)}`)
  }
  const value = content.replace(/[\r\n]+$/, '')
  if (value === '') throw new ConfigError(`${label} file ${path} is empty`)
  return value
}

/** `@/path` (or `@relative`, against `baseDir`) reads the value from a file; anything else is the value. */
export function resolveSecretReference(
  value: string,
  baseDir: string,
  fs: ConfigFs,
  label: string,
): { readonly value: string; readonly file: string | null } {
  if (!value.startsWith('@')) return { value, file: null }
  const file = resolve(baseDir, value.slice(1))
  return { value: readSecretFile(fs, file, label), file }
}

export function describeFsError(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code
  return err instanceof Error ? err.message.split('\n')[0]! : String(err)
}

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

/** PostgREST refuses HS256 secrets shorter than 32 characters; so does the gateway (RFC 7518 3.2). */
const MIN_HMAC_LENGTH = 32

/**
 * Checks a key the way PostgREST's `jwt-secret` is read: JSON (starts with `{`) is a JWK or a
 * JWK Set (a set only for verifying), anything else is an HS256 secret. Deeper key checks belong to the auth and mint
 * modules. Messages never contain the value.
 */
export function checkKeyMaterial(
  value: string,
  isBase64: boolean,
  label: string,
  base64Label: string,
  use: 'verify' | 'sign',
): void {
  if (value.trimStart().startsWith('{')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(value)
    } catch {
      // JSON.parse's message quotes the input: never repeat it.
      throw new ConfigError(`${label} starts with "{" but is not valid JSON (expected a JWK or a JWK Set)`)
    }
    if (
      typeof parsed !== 'object' ||
      parsed === null ||
      Array.isArray(parsed) ||
      !('kty' in parsed || 'keys' in parsed)
    ) {
      throw new ConfigError(`${label} is JSON but neither a JWK (no "kty") nor a JWK Set (no "keys")`)
    }
    if (use === 'sign' && !('kty' in parsed)) {
      throw new ConfigError(`${label} is a JWK Set: tokens are signed with one private JWK`)
    }
    return
  }
  if (isBase64) {
    if (!BASE64.test(value)) throw new ConfigError(`${label} is not valid base64, as ${base64Label} requires`)
    if (Buffer.from(value, 'base64').length < MIN_HMAC_LENGTH) {
      throw new ConfigError(
        `${label} decodes to fewer than ${MIN_HMAC_LENGTH} bytes: an HS256 secret needs at least ${MIN_HMAC_LENGTH}`,
      )
    }
    return
  }
  if (value.length < MIN_HMAC_LENGTH) {
    throw new ConfigError(
      `${label} is shorter than ${MIN_HMAC_LENGTH} characters: an HS256 secret needs at least ${MIN_HMAC_LENGTH} (or use a JWK)`,
    )
  }
}
