import type { IncomingMessage } from 'node:http'
import { describe, expect, it } from 'vitest'
import { forwardRequestHeaders, forwardResponseHeaders } from '../../../src/proxy/headers.js'

type Pair = [string, string]

function request(headers: Pair[], remoteAddress = '192.0.2.7', encrypted = false): IncomingMessage {
  return { rawHeaders: headers.flat(), socket: { remoteAddress, encrypted } } as unknown as IncomingMessage
}

/** A flat [name, value, ...] list as pairs, so that expectations read one header per line. */
function pairs(flat: readonly string[]): Pair[] {
  const out: Pair[] = []
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!])
  return out
}

/** forwardResponseHeaders' list and the body length it reads. */
function response(raw: readonly (Buffer | string)[]): { headers: Pair[]; contentLength: number } {
  const out: string[] = []
  const contentLength = forwardResponseHeaders(raw, 'req-1', out)
  return { headers: pairs(out), contentLength }
}

function forward(
  req: IncomingMessage,
  authorization: string | null = 'Bearer minted',
  trust = false,
): { headers: Pair[]; hasBody: boolean } {
  const headers: string[] = []
  const hasBody = forwardRequestHeaders(req, headers, authorization, 'req-1', trust)
  return { headers: pairs(headers), hasBody }
}

describe('forwardRequestHeaders', () => {
  it('drops hop-by-hop fields, the fields Connection names, Host, Expect and the inbound Authorization', () => {
    const { headers, hasBody } = forward(
      request([
        ['Host', 'gw.example'],
        ['Connection', 'keep-alive, X-Hop, x-other-hop'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Hop', 'secret'],
        ['TE', 'trailers'],
        ['Trailer', 'X-Sum'],
        ['Upgrade', 'h2c'],
        ['Proxy-Connection', 'keep-alive'],
        ['Proxy-Authorization', 'Basic YTpi'],
        ['Proxy-Anything', '1'],
        ['Expect', '100-continue'],
        ['X-OTHER-HOP', 'also secret'],
        ['Authorization', 'Bearer inbound'],
        ['Prefer', 'return=representation'],
        ['Accept', 'application/vnd.pgrst.object+json;nulls=stripped'],
        ['prefer', 'count=exact'],
        ['Content-Length', '2'],
      ]),
    )
    expect(headers).toEqual([
      ['Prefer', 'return=representation'],
      ['Accept', 'application/vnd.pgrst.object+json;nulls=stripped'],
      ['prefer', 'count=exact'],
      ['Content-Length', '2'],
      ['Authorization', 'Bearer minted'],
      ['x-forwarded-for', '192.0.2.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'gw.example'],
      ['x-request-id', 'req-1'],
    ])
    expect(hasBody).toBe(true)
  })

  it('sends no Authorization when the caller passes null (anonymous: PostgREST applies db-anon-role)', () => {
    const { headers, hasBody } = forward(
      request([
        ['Host', 'h'],
        ['Authorization', 'Basic YTpi'],
      ]),
      null,
    )
    expect(headers).toEqual([
      ['x-forwarded-for', '192.0.2.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
      ['x-request-id', 'req-1'],
    ])
    expect(hasBody).toBe(false)
  })

  it('cannot be made to drop the fields the gateway sets by naming them in Connection', () => {
    const { headers } = forward(
      request([
        ['Host', 'h'],
        ['Connection', 'Authorization, X-Request-Id, X-Forwarded-For, x-forwarded-proto'],
      ]),
    )
    expect(headers).toEqual([
      ['Authorization', 'Bearer minted'],
      ['x-forwarded-for', '192.0.2.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
      ['x-request-id', 'req-1'],
    ])
  })

  it('replaces inbound X-Forwarded-* and X-Request-Id unless forwarded headers are trusted', () => {
    const raw: Pair[] = [
      ['Host', 'gw.example'],
      ['x-forwarded-for', '10.0.0.1'],
      ['x-forwarded-for', '10.0.0.2, 10.0.0.3'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'api.example'],
      ['X-Request-Id', 'client-chosen'],
    ]
    expect(forward(request(raw)).headers).toEqual([
      ['Authorization', 'Bearer minted'],
      ['x-forwarded-for', '192.0.2.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'gw.example'],
      ['x-request-id', 'req-1'],
    ])
    expect(forward(request(raw), 'Bearer minted', true).headers).toEqual([
      ['Authorization', 'Bearer minted'],
      ['x-forwarded-for', '10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'api.example'],
      ['x-request-id', 'req-1'],
    ])
  })

  it('says https when the client connection is TLS', () => {
    const { headers } = forward(request([['Host', 'h']], '::1', true), null)
    expect(headers).toEqual([
      ['x-forwarded-for', '::1'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'h'],
      ['x-request-id', 'req-1'],
    ])
  })

  it('sees a body behind Transfer-Encoding or a non-zero Content-Length only', () => {
    expect(forward(request([['Transfer-Encoding', 'chunked']])).hasBody).toBe(true)
    expect(forward(request([['Content-Length', '0']])).hasBody).toBe(false)
    expect(forward(request([['Content-Length', '0']])).headers[0]).toEqual(['Content-Length', '0'])
    expect(forward(request([])).hasBody).toBe(false)
  })
})

describe('forwardResponseHeaders', () => {
  it('keeps case, order and repeated Set-Cookie, drops hop-by-hop and Connection-named fields', () => {
    expect(
      response(
        [
          ['Content-Type', 'application/json; charset=utf-8'],
          ['Connection', 'keep-alive, X-Internal'],
          ['Keep-Alive', 'timeout=5'],
          ['Transfer-Encoding', 'chunked'],
          ['Trailer', 'X-Sum'],
          ['Upgrade', 'h2c'],
          ['Proxy-Authenticate', 'Basic'],
          ['Proxy-Status', 'PostgREST; error=PGRST116'],
          ['X-Internal', 'secret'],
          ['Set-Cookie', 'a=1; Path=/'],
          ['Content-Range', '0-24/*'],
          ['set-cookie', 'b=2; HttpOnly'],
          ['X-Request-Id', 'from-upstream'],
        ].flat(),
      ),
    ).toEqual({
      headers: [
        ['Content-Type', 'application/json; charset=utf-8'],
        ['Proxy-Status', 'PostgREST; error=PGRST116'],
        ['Set-Cookie', 'a=1; Path=/'],
        ['Content-Range', '0-24/*'],
        ['set-cookie', 'b=2; HttpOnly'],
        ['X-Request-Id', 'req-1'],
      ],
      contentLength: -1,
    })
  })

  it('reads the raw Buffers undici hands over the same way, names seen before included', () => {
    const raw: Pair[] = [
      ['Content-Type', 'application/json; charset=utf-8'],
      ['Content-Length', '57'],
      ['Date', 'Sat, 05 Dec 2026 19:00:00 GMT'],
      ['Connection', 'keep-alive, X-Internal'],
      ['Keep-Alive', 'timeout=5'],
      ['X-Internal', 'secret'],
      ['content-type', 'caf\u00e9'],
      ['Proxy-Status', 'PostgREST; error=PGRST116'],
      ['X-Request-Id', 'from-upstream'],
    ]
    const expected: Pair[] = [
      ['Content-Type', 'application/json; charset=utf-8'],
      ['Content-Length', '57'],
      ['Date', 'Sat, 05 Dec 2026 19:00:00 GMT'],
      ['content-type', 'caf\u00e9'],
      ['Proxy-Status', 'PostgREST; error=PGRST116'],
      ['X-Request-Id', 'req-1'],
    ]
    // Three times: names made the first time are found again by their bytes.
    for (let round = 0; round < 3; round++) {
      const buffers = raw.flat().map((text) => Buffer.from(text, 'latin1'))
      expect(response(buffers)).toEqual({ headers: expected, contentLength: 57 })
    }
    // Names that differ only in case, or by one byte, are not taken for each other.
    const lookalikes = ['X-Internal', 'x-internal', 'X-Internam', 'Keep-alive', 'Connectiom']
    for (let round = 0; round < 2; round++) {
      expect(response(lookalikes.flatMap((name) => [Buffer.from(name), Buffer.from('v')])).headers).toEqual([
        ['X-Internal', 'v'],
        ['x-internal', 'v'],
        ['X-Internam', 'v'],
        ['Connectiom', 'v'],
        ['X-Request-Id', 'req-1'],
      ])
    }
  })

  it('reads the body length from one plain Content-Length only', () => {
    const length = (...values: string[]) =>
      response(values.flatMap((value) => ['Content-Length', value])).contentLength
    expect(length('0')).toBe(0)
    expect(length('1048576')).toBe(1_048_576)
    expect(length()).toBe(-1)
    expect(length('12', '12')).toBe(-1)
    expect(length('+5')).toBe(-1)
    expect(length('5 ')).toBe(-1)
    expect(length('')).toBe(-1)
    expect(length('9'.repeat(16))).toBe(-1)
  })
})
