// Claims stage: reads the NOTIFY payloads sent by sql/install.sql into invalidation instructions.

/** What one notification asks the cache to drop. */
export type Invalidation =
  | { readonly kind: 'user'; readonly userId: string }
  | { readonly kind: 'session'; readonly sessionId: string; readonly userId: string | null }
  | { readonly kind: 'all' }

const ALL: Invalidation = Object.freeze({ kind: 'all' })

/**
 * Payloads are JSON objects: `{"user_id": "..."}` for a user, `{"session_id": "...", "user_id": "..."}`
 * for a session. Anything else (`reset`, a truncate, a payload from a newer or older install.sql)
 * clears everything: the cache cannot know what it missed, so it must not keep trusting entries.
 */
export function parseInvalidation(payload: string): Invalidation {
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return ALL
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ALL
  const record = value as Record<string, unknown>
  const userId = record['user_id']
  const sessionId = record['session_id']
  if (typeof sessionId === 'string' && sessionId !== '') {
    return { kind: 'session', sessionId, userId: typeof userId === 'string' && userId !== '' ? userId : null }
  }
  if (typeof userId === 'string' && userId !== '') return { kind: 'user', userId }
  return ALL
}
