// Auth: bearer extraction, inbound key sets (static, JWKS URL) and the verify stage.
export { extractBearer } from './bearer.js'
export {
  createCandidateIndex,
  importJwk,
  importJwks,
  isJwsAlg,
  JWS_ALGS,
  type JwsAlg,
  type KeyKind,
  type KeySource,
  MIN_SECRET_BYTES,
  parseKeySet,
  type SkippedKey,
  type StaticKeySet,
  type VerifyKey,
} from './key-set.js'
export {
  combineKeySets,
  createRemoteKeySet,
  maxAgeOf,
  type RemoteKeySet,
  type RemoteKeySetOptions,
} from './remote-key-set.js'
export type { Claims, VerifiedToken, Verifier } from './types.js'
export { createVerifier, type VerifierOptions } from './verifier.js'
