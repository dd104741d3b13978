// Config tests' support: an in-memory file system and a minimal valid environment.
import type { ConfigFs } from '../../../src/config/index.js'

/** An HS256 secret of exactly 32 characters: the shortest one accepted. */
export const SECRET = 'a-32-character-hs256-secret-0123'

export const BASE_ENV: Readonly<Record<string, string>> = { GATEWAY_UPSTREAM_JWT_SECRET: SECRET }

/** Files by absolute path; a missing one throws ENOENT like node:fs; `reads` records every read. */
export function memoryFs(files: Record<string, string>): ConfigFs & { readonly reads: string[] } {
  const reads: string[] = []
  return {
    reads,
    readFile(path) {
      reads.push(path)
      const content = files[path]
      if (content === undefined) {
        throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), {
          code: 'ENOENT',
        })
      }
      return content
    },
  }
}
