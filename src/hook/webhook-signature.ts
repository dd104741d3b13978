// Hook stage (HTTP): Standard Webhooks signing of the request the gateway sends to a hook endpoint.
import { createHmac } from 'node:crypto'

// https://www.standardwebhooks.com (spec/standard-webhooks.md): symmetric secrets are shared as
// `whsec_<base64>`; Supabase Auth prefixes the version, `v1,whsec_<base64>` (conf
// `symmetricSecretFormat`), and strips `v1,` before handing the rest to the standardwebhooks library.
const SECRET = /^v1,whsec_([A-Za-z0-9+/=]+)$/

/** The key bytes of a `v1,whsec_<base64>` secret; throws an Error that never contains the secret. */
export function parseWebhookSecret(secret: string, position: number): Buffer {
  const match = SECRET.exec(secret)
  const key = match === null ? null : Buffer.from(match[1] as string, 'base64')
  if (key === null || key.length === 0) {
    throw new Error(`GATEWAY_HOOK_SECRETS (hook.secrets): entry ${position} must look like v1,whsec_<base64>`)
  }
  return key
}

/**
 * The `webhook-signature` value: for each key, `v1,` + base64(HMAC-SHA256(key,
 * `<webhook-id>.<webhook-timestamp>.<body>`)), several separated by a space as the spec says
 * ("space delimited list of signatures"). Supabase joins them with ", "; the standardwebhooks
 * verifiers split on the space and read the part after the first comma, so both forms verify.
 */
export function signWebhook(keys: readonly Buffer[], id: string, timestamp: number, body: string): string {
  const content = `${id}.${timestamp}.${body}`
  let header = ''
  for (let i = 0; i < keys.length; i++) {
    const mac = createHmac('sha256', keys[i] as Buffer)
      .update(content)
      .digest('base64')
    header += i === 0 ? `v1,${mac}` : ` v1,${mac}`
  }
  return header
}
