// Benchmarks: the part of autocannon's programmatic API the load runner uses (the package ships no types).
declare module 'autocannon' {
  namespace autocannon {
    interface RequestSpec {
      method?: string
      path?: string
      headers?: Record<string, string> | undefined
      setupRequest?: (req: RequestSpec) => RequestSpec
    }
    interface Options {
      url: string
      connections?: number
      duration?: number
      /** Stop after this many requests instead of after `duration`. */
      amount?: number
      /** Seconds before a request counts as timed out (default 10). */
      timeout?: number
      requests?: RequestSpec[]
    }
    interface Result {
      duration: number
      errors: number
      timeouts: number
      non2xx: number
      /** Responses by status code. */
      statusCodeStats: Record<string, { count: number }>
      requests: { total: number }
      latency: { p50: number; p99: number }
    }
    /** The running load: a Promise of the result that also reports each response as it arrives. */
    interface Instance extends Promise<Result> {
      /** `client` is the connection's client (one per connection); `responseTime` in ms. */
      on(
        event: 'response',
        listener: (client: object, statusCode: number, resBytes: number, responseTime: number) => void,
      ): this
    }
  }
  function autocannon(options: autocannon.Options): autocannon.Instance
  export default autocannon
}
