// Hook stage: the one contract both transports (Postgres function, HTTP endpoint) implement.

/** Sends one hook input (a JSON text) and resolves with the hook's parsed JSON answer. */
export interface Dispatcher {
  call(input: string): Promise<unknown>
  close(): Promise<void>
}

/**
 * Why a call produced no usable answer. `reason` goes to the log only: it names the condition
 * (a status, an SQLSTATE, a limit), never a claim value or a secret.
 */
export class HookCallFailed extends Error {
  readonly result: 'timeout' | 'error' | 'invalid'
  readonly reason: string

  constructor(result: 'timeout' | 'error' | 'invalid', reason: string, cause?: unknown) {
    super(reason, cause === undefined ? undefined : { cause })
    this.name = 'HookCallFailed'
    this.result = result
    this.reason = reason
  }
}

/** Parses a hook's answer; text that is not JSON breaks the contract. */
export function parseAnswer(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new HookCallFailed('invalid', 'the answer is not JSON')
  }
}
