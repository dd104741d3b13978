// Process launch: the Node flags every way of starting the gateway uses (npm start, the bin, the image).

/**
 * A 16 MB semi-space for V8's young generation, on every Node version and under every memory
 * limit. V8 sizes the young generation from the heap limit, which follows the memory Node sees (on a
 * 24 GB machine: 16 MB on Node 20, 64 MB on Node 24): in a small pod the young generation can shrink to
 * a few megabytes, and at 256 concurrent requests a proxy with a 2 MB semi-space spent about twice
 * the CPU per request of the same proxy at 16 MB (bench/, a bare undici proxy). At 16 MB
 * a request's garbage dies young. The body chunks of a large upload or download are freed by the
 * forward stage's own collections (proxy/spent-buffers.ts), not by a small young generation. Checked against package.json, the bin's shebang and the Dockerfile by a test.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16']
