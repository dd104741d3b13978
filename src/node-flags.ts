// Process launch: the Node flags every way of starting the gateway uses (npm start, the bin, the image).

/**
 * A 16 MB semi-space for V8's young generation, on every Node version and under every memory
 * limit. V8 sizes the young generation from the heap limit, which follows the memory Node sees (on a
 * 24 GB machine: 16 MB on Node 20, 64 MB on Node 24): in a small pod the young generation can shrink to
 * a few megabytes, and at 256 concurrent requests a proxy with a 2 MB semi-space spent about twice
 * the CPU per request of the same proxy at 16 MB (bench/, a bare undici proxy). At 16 MB
 * a request's garbage dies young. The body chunks of a large upload or download are freed by the
 * forward stage's own collections (proxy/spent-buffers.ts), not by a small young generation.
 *
 * No allocation-site pretenuring: V8 allocates the objects of a literal straight in the old
 * generation once most of them have outlived a young collection. While a cold gateway waits on
 * the database for its first users, the objects of a few literals on the request path do, and V8
 * then pretenured those literals for good: every later request put them in the old
 * generation, which grew by about 160 KB per young collection, mapping fresh pages (a page fault
 * costs tens of microseconds on some VMs) and bringing full collections sooner. Measured with the
 * claims lookup on: 0.05-0.07 page faults and about 6 us more CPU per request than with it off;
 * with the flag, the same as off.
 *
 * `--expose-gc`: the forward stage asks V8 for young collections after every 16 MB of body
 * (proxy/spent-buffers.ts). It takes `gc` when it loads and clears it from the global, so no other
 * code calls it. Without the flag it has to make a second context to get `gc`, which on Node 24
 * cost the gateway its optimized code after every idle spell.
 *
 * Checked against package.json, the bin's shebang and the Dockerfile by a test.
 */
export const NODE_FLAGS: readonly string[] = [
  '--max-semi-space-size=16',
  '--no-allocation-site-pretenuring',
  '--expose-gc',
]
