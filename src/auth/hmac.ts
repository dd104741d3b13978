// Verify and mint, shared: HMAC (RFC 2104) over node:crypto's one-shot hash, prepared once per key.
import { hash } from 'node:crypto'

export type HmacHash = 'sha256' | 'sha384' | 'sha512'

/** RFC 2104 2: the hash's block size B in bytes (SHA-256: 64; SHA-384/512: 128). */
const BLOCK_BYTES: { readonly [H in HmacHash]: number } = { sha256: 64, sha384: 128, sha512: 128 }
const DIGEST_BYTES: { readonly [H in HmacHash]: number } = { sha256: 32, sha384: 48, sha512: 64 }

/**
 * HMAC with the key's inner and outer pads computed once. `createHmac` builds a stream object per
 * call (~0.6 us); this writes `K ^ ipad || message` into one reused buffer and hashes it with
 * `crypto.hash` (Node 20.12+), then `K ^ opad || inner`: the same RFC 2104 result, no object per call.
 * Not re-entrant (one scratch buffer): each instance is used synchronously by its owner only.
 */
export class Hmac {
  readonly hash: HmacHash
  readonly #block: number
  readonly #ipad: Buffer
  #inner: Buffer
  #view: Buffer
  readonly #outer: Buffer

  constructor(hashName: HmacHash, key: Buffer) {
    this.hash = hashName
    const block = BLOCK_BYTES[hashName]
    this.#block = block
    // RFC 2104 2: a key longer than B is hashed first; a shorter one is padded with zeros.
    const k = Buffer.alloc(block)
    ;(key.length > block ? hash(hashName, key, 'buffer') : key).copy(k)
    this.#ipad = Buffer.allocUnsafe(block)
    this.#outer = Buffer.allocUnsafe(block + DIGEST_BYTES[hashName])
    for (let i = 0; i < block; i++) {
      this.#ipad[i] = k[i]! ^ 0x36
      this.#outer[i] = k[i]! ^ 0x5c
    }
    k.fill(0)
    this.#inner = Buffer.allocUnsafe(block + 2048)
    this.#ipad.copy(this.#inner)
    this.#view = this.#inner.subarray(0, 0)
  }

  /** The base64url MAC of the first `length` characters of `text`, each taken as one byte (latin1). */
  latin1(text: string, length: number): string {
    const end = this.#reserve(length)
    this.#inner.write(text, this.#block, length, 'latin1')
    return this.#finish(end)
  }

  /** The base64url MAC of `bytes[start, end)`. */
  bytes(bytes: Buffer, start: number, end: number): string {
    const stop = this.#reserve(end - start)
    bytes.copy(this.#inner, this.#block, start, end)
    return this.#finish(stop)
  }

  #reserve(length: number): number {
    const end = this.#block + length
    if (end > this.#inner.length) {
      this.#inner = Buffer.allocUnsafe(end + 1024)
      this.#ipad.copy(this.#inner)
      this.#view = this.#inner.subarray(0, 0)
    }
    return end
  }

  /**
   * The inner digest comes back as a latin1 string and is written into the outer buffer: a Buffer
   * result costs ~0.8 us more per call than a string (Node allocates a separate backing store).
   */
  #finish(end: number): string {
    // Tokens of one issuer are mostly the same length: the view of the last length is reused.
    let view = this.#view
    if (view.length !== end) {
      view = this.#inner.subarray(0, end)
      this.#view = view
    }
    const inner = hash(this.hash, view, 'binary')
    this.#outer.write(inner, this.#block, 'latin1')
    return hash(this.hash, this.#outer, 'base64url')
  }
}
