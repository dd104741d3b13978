// Forward stage: streaming forward to PostgREST over undici, hop-by-hop headers, upstream errors.
export { createForwarder, type Forwarder, type ForwarderOptions, type ForwardOutcome } from './forwarder.js'
export { forwardRequestHeaders, forwardResponseHeaders } from './headers.js'
export {
  classifyUpstreamError,
  isClientAbort,
  translateUpstreamError,
  type UpstreamFailureKind,
} from './upstream-errors.js'
