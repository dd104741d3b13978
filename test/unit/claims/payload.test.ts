// Unit: NOTIFY payloads -> invalidations.
import { describe, expect, it } from 'vitest'
import { parseInvalidation } from '../../../src/claims/payload.js'

describe('parseInvalidation', () => {
  it('reads a user payload', () => {
    expect(parseInvalidation('{"user_id":"u1"}')).toEqual({ kind: 'user', userId: 'u1' })
  })

  it('reads a session payload with and without its user', () => {
    expect(parseInvalidation('{"user_id":"u1","session_id":"s1"}')).toEqual({
      kind: 'session',
      sessionId: 's1',
      userId: 'u1',
    })
    expect(parseInvalidation('{"session_id":"s1"}')).toEqual({
      kind: 'session',
      sessionId: 's1',
      userId: null,
    })
  })

  it.each([
    ['reset'],
    ['{"reset":true}'],
    [''],
    ['[]'],
    ['null'],
    ['{"user_id":42}'],
    ['{"user_id":""}'],
    ['{"user_id":'],
  ])('clears everything for a payload it cannot read: %j', (payload) => {
    expect(parseInvalidation(payload)).toEqual({ kind: 'all' })
  })
})
