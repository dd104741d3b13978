// Claims stage (freshen): current claims from PostgreSQL, cached, invalidated by LISTEN/NOTIFY.
export { type Invalidation, parseInvalidation } from './payload.js'
export { type ClaimsStoreOptions, createClaimsStore } from './store.js'
export type { ClaimsStore, FreshClaims } from './types.js'
