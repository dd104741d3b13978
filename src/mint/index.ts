// Mint: signing + minted-token reuse.
export { createMinter, type Minter } from './minter.js'
export { importSigningKey, type MintAlgorithm, type SigningKey } from './signing-key.js'
