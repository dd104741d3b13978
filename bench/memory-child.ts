// Benchmarks, memory (child process, --expose-gc): heap held by the verifier, claims and mint caches for N users.
import postgres from 'postgres'
import { createVerifier, parseKeySet } from '../src/auth/index.js'
import type { VerifiedToken } from '../src/auth/types.js'
import { createClaimsStore } from '../src/claims/index.js'
import { createMinter, importSigningKey } from '../src/mint/index.js'
import { createRoleMapper } from '../src/role/index.js'
import { benchConfig, hsToken, INBOUND_SECRET, UPSTREAM_SECRET } from './fixtures.js'

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')

function heapMb(): number {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed / 2 ** 20
}

const dbUrl = process.env['DB_URL'] ?? ''
const count = Number(process.env['USERS'] ?? 100_000)
const config = benchConfig({ GATEWAY_DB_URL: dbUrl })
const verifier = createVerifier({
  keys: parseKeySet(INBOUND_SECRET, { isBase64: false }),
  aud: null,
  iss: null,
  clockSkewSeconds: 30,
  cacheMaxEntries: config.jwt.cacheMaxEntries,
})
const store = createClaimsStore({ db: config.db, claims: config.claims })
await store.start()
const roles = createRoleMapper(config.role)
const minter = createMinter({
  key: await importSigningKey(UPSTREAM_SECRET, { isBase64: false, kid: null }),
  mint: config.mint,
})
const sql = postgres(dbUrl, { max: 1 })
const ids = await sql<{ id: string; session: string }[]>`
  select u.id::text as id, s.id::text as session from auth.users u join auth.sessions s on s.user_id = u.id
  limit ${count}`
await sql.end()

const before = heapMb()
let tokens: string[] | null = ids.map((row, n) => hsToken({ id: row.id, sessionId: row.session }, n))
ids.length = 0
// Every user's verified token, to count the minted tokens still kept once the heap is measured
// (verifying again would move the verifier's generations). 8 B a user, included in the figure.
const kept: VerifiedToken[] = []
const started = performance.now()
// What a request does, for every user once: verify, freshen (database lookups), map, mint.
for (let i = 0; i < tokens.length; i += 500) {
  await Promise.all(
    tokens.slice(i, i + 500).map(async (token) => {
      const verified = verifier.verify(token) as VerifiedToken
      kept.push(verified)
      const user = await store.freshen(verified)
      minter.authorization(verified, user, roles.mapRole(verified.claims, user), null)
    }),
  )
}
const users = tokens.length
tokens = null
const after = heapMb()
let mintedTokens = 0
for (const verified of kept) if (verified.minted !== undefined) mintedTokens++
kept.length = 0
process.send?.({
  users,
  cachedTokens: verifier.size,
  mintedTokens,
  mintCacheMaxEntries: config.mint.cacheMaxEntries,
  heapMb: after,
  cachesMb: after - before,
  seconds: (performance.now() - started) / 1000,
})
await store.close()
await verifier.close()
