// Process start: keeps one of process.nextTick's queue entries alive, so V8 keeps their hidden class.
import { executionAsyncResource } from 'node:async_hooks'

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
let kept: Promise<object> | null = null

/**
 * Keeps the entry of one `nextTick` call: inside its callback the entry is the execution's async
 * resource (no async hook is enabled for it). Idempotent; the Promise resolves, within the current
 * tick, to the entry kept.
 */
export function keepTickShape(): Promise<object> {
  kept ??= new Promise((resolve) => {
    process.nextTick(() => resolve(executionAsyncResource()))
  })
  return kept
}
