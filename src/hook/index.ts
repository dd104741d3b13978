// Hook stage: Supabase's custom access token hook contract, run on fresh claims.
export { HookCallFailed } from './dispatch.js'
export { createHook, type Hook, type HookOptions, type HookTarget, hookInput, parseHookUri } from './hook.js'
export { createHttpEndpoint, defaultBackoffMs, HTTP_HOOK_ATTEMPTS } from './http-endpoint.js'
export { claimProblems, type HookOutcome, judgeOutput } from './output.js'
export { createPgFunction } from './pg-function.js'
export { parseWebhookSecret, signWebhook } from './webhook-signature.js'
