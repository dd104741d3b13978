// Process start: keeps one of process.nextTick's queue entries alive, so V8 keeps their hidden class.
import { createHook } from 'node:async_hooks'

/**
 * One entry of `process.nextTick`'s queue (Node's `TickObject`), held for the life of the process.
 *
 * Node makes each entry with an object literal whose first keys are computed (`{ [async_id_symbol]:
 * ..., [trigger_async_id_symbol]: ..., callback, args }`, and on Node 24 an async context frame), so
 * V8 builds its hidden class ("map") by transitions from the map of `{}`, and keeps those maps only
 * while something uses them. Between bursts of traffic no entry is alive: a full collection drops
 * the maps, and the next entry gets new ones. Each time, the property stores of `nextTick`'s
 * compiled code see another map, until they go megamorphic and every entry is built through the
 * runtime; and once the map of `{}` holds V8's limit of transitions (1,536 first property names,
 * which a proxy under load reached within seconds here), a dropped map cannot be found again and
 * every entry gets a map of its own. Measured on Node 24 in the gateway after start: `nextTick`
 * 250-590 ns a call instead of 45-90 ns, and 5-8% more CPU per proxied request (Node's streams call
 * it several times a request). Holding one entry keeps its maps, and so the transitions to them.
 */
let kept: object | null = null

const noop = (): void => {}

/**
 * Takes one `TickObject` as it is made (an async hook, enabled for one `nextTick` call) and keeps it.
 * Idempotent; returns the entry kept, or null where Node made none (a runtime without `TickObject`).
 */
export function keepTickShape(): object | null {
  if (kept !== null) return kept
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept === null) kept = resource as object
    },
  })
  hook.enable()
  try {
    process.nextTick(noop)
  } finally {
    hook.disable()
  }
  return kept
}
