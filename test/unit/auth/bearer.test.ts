import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { extractBearer } from '../../../src/auth/bearer.js'
import { GatewayError } from '../../../src/errors/index.js'

function emptyError(header: string): GatewayError {
  try {
    extractBearer(header)
  } catch (err) {
    return err as GatewayError
  }
  throw new Error(`no error for ${JSON.stringify(header)}`)
}

describe('extractBearer', () => {
  it('is anonymous without a header', () => {
    expect(extractBearer(undefined)).toBeNull()
  })

  it('takes the token after the Bearer scheme, matched case-insensitively', () => {
    expect(extractBearer('Bearer abc.def.ghi')).toBe('abc.def.ghi')
    expect(extractBearer('bearer abc.def.ghi')).toBe('abc.def.ghi')
    expect(extractBearer('BEARER abc.def.ghi')).toBe('abc.def.ghi')
    expect(extractBearer('bEaReR abc.def.ghi')).toBe('abc.def.ghi')
  })

  it('drops every leading whitespace char after the scheme, as wai-extra dropWhile isSpace does', () => {
    expect(extractBearer('Bearer    abc')).toBe('abc')
    expect(extractBearer('Bearer\tabc')).toBe('abc')
    expect(extractBearer('Bearer \t \u000b\u000c abc')).toBe('abc')
    expect(extractBearer('Bearer\u00a0abc')).toBe('abc')
  })

  it('keeps inner and trailing whitespace in the token (PostgREST does not trim it)', () => {
    expect(extractBearer('Bearer abc def')).toBe('abc def')
    expect(extractBearer('Bearer abc\u000b')).toBe('abc\u000b')
  })

  it('treats any other scheme as anonymous', () => {
    expect(extractBearer('Basic dXNlcjpwYXNz')).toBeNull()
    expect(extractBearer('Digest username="x"')).toBeNull()
    expect(extractBearer('abc.def.ghi')).toBeNull()
    expect(extractBearer('Bearerabc.def.ghi')).toBeNull()
    expect(extractBearer('Beare abc')).toBeNull()
    expect(extractBearer('Bearer_abc')).toBeNull()
    expect(extractBearer('')).toBeNull()
    expect(extractBearer('Token abc')).toBeNull()
  })

  it('does not fold non-letters onto the scheme (only ASCII letters differ by 0x20)', () => {
    // '@' | 0x20 === '`', not a letter of "bearer"; 'B' ^ 0x20 tricks must not pass either.
    expect(extractBearer('\u0042\u0045\u0041\u0052\u0045\u0052 abc')).toBe('abc')
    expect(extractBearer('Be@rer abc')).toBeNull()
    expect(extractBearer('BEARE\u0012 abc')).toBeNull()
  })

  it('refuses Bearer with an empty token: PGRST301, Empty JWT', () => {
    for (const header of ['Bearer', 'bearer', 'Bearer ', 'Bearer    ', 'Bearer\t', 'Bearer \t\u000b']) {
      const err = emptyError(header)
      expect(err).toBeInstanceOf(GatewayError)
      expect(err.kind).toBe('JwtEmpty')
      expect(err.code).toBe('PGRST301')
      expect(err.status).toBe(401)
      expect(err.message).toBe('Empty JWT is sent in Authorization header')
    }
  })

  it('sees only the first of two Authorization headers, as Node hands them over (raw socket)', async () => {
    const seen: IncomingHttpHeaders[] = []
    const server = createServer((req, res) => {
      seen.push(req.headers)
      res.end('ok')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    try {
      const socket = connect(port, '127.0.0.1')
      await once(socket, 'connect')
      socket.write(
        'GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer first.token.here\r\n' +
          'Authorization: Bearer second.token.here\r\nConnection: close\r\n\r\n',
      )
      let response = ''
      socket.setEncoding('latin1')
      socket.on('data', (chunk: string) => {
        response += chunk
      })
      await once(socket, 'end')
      expect(response.startsWith('HTTP/1.1 200 OK')).toBe(true)
    } finally {
      server.close()
    }
    expect(seen).toHaveLength(1)
    expect(seen[0]!.authorization).toBe('Bearer first.token.here')
    expect(extractBearer(seen[0]!.authorization)).toBe('first.token.here')
  })

  it('gets the header value from Node with outer whitespace trimmed (raw socket)', async () => {
    let value: string | undefined
    const server = createServer((req, res) => {
      value = req.headers.authorization
      res.end()
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as { port: number }
    try {
      const socket = connect(port, '127.0.0.1')
      await once(socket, 'connect')
      socket.write('GET / HTTP/1.1\r\nHost: x\r\nAuthorization:   Bearer  \t \r\nConnection: close\r\n\r\n')
      socket.resume()
      await once(socket, 'end')
    } finally {
      server.close()
    }
    expect(value).toBe('Bearer')
    expect(() => extractBearer(value)).toThrow('Empty JWT is sent in Authorization header')
  })
})
