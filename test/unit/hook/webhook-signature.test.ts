import { createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseWebhookSecret, signWebhook } from '../../../src/hook/webhook-signature.js'

describe('Standard Webhooks signing', () => {
  it('matches the example in the Standard Webhooks specification', () => {
    // spec/standard-webhooks.md, "Signature scheme" example (also the libraries' test vector).
    const key = parseWebhookSecret('v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 1)
    const body = '{"test": 2432232314}'
    expect(signWebhook([key], 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    )
  })

  it('signs <id>.<timestamp>.<body> with the decoded key bytes, once per secret, space-separated', () => {
    const raw = [randomBytes(32), randomBytes(24), randomBytes(64)]
    const secrets = raw.map((bytes) => `v1,whsec_${bytes.toString('base64')}`)
    const keys = secrets.map((secret, i) => parseWebhookSecret(secret, i + 1))
    const body = '{"user_id":"u","claims":{},"authentication_method":"token_refresh"}'
    const expected = raw
      .map((bytes) => `v1,${createHmac('sha256', bytes).update(`id-1.1700000000.${body}`).digest('base64')}`)
      .join(' ')
    expect(signWebhook(keys, 'id-1', 1_700_000_000, body)).toBe(expected)
  })

  it('refuses malformed secrets, naming the position but not the value', () => {
    for (const bad of ['whsec_abcd', 'v1,abcd', 'v1,whsec_', 'v1a,whpk_abc', 'v1,whsec_ab cd']) {
      expect(() => parseWebhookSecret(bad, 2)).toThrow(
        'GATEWAY_HOOK_SECRETS (hook.secrets): entry 2 must look like v1,whsec_<base64>',
      )
    }
  })
})
