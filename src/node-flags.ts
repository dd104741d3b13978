// Process launch: the Node flags every way of starting the gateway uses (npm start, the bin, the image).

/**
 * V8's young generation grows to 16 MB per semi-space on Node 20 and more on Node 24; the socket
 * buffers of a streamed body live there until the next scavenge. At 2 MB a 100 MB upload or
 * download keeps the gateway within about 40 MB of its idle size, on both, for a few more (short)
 * scavenges. Checked against package.json, the bin's shebang and the Dockerfile by a test.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2']
