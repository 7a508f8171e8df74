import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import { fileUpload } from '../test/helper.js'

export interface LoadResult {
  connections: number
  seconds: number
  responses: number
  requestsPerSecond: number
  latencyMs: { p50: number, p95: number, p99: number, max: number }
  /** Connection errors, timeouts and non-2xx answers. */
  errors: number
  /** CPU the load generator itself used (this process), in cores: its share of the machine the server did not get. */
  loadGeneratorCores: number
  statuses: Record<string, number>
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/**
 * `connections` keep-alive connections, each posting the images in turn as real multipart uploads to
 * `${url}/predict`, for `seconds`. Latencies are collected from every response (autocannon's summary has no p95).
 *
 * Connection i starts at image i x images/connections: autocannon starts every connection at the first request,
 * and against a FIFO server the connections then stay in step, so all of them send the same image at the same time
 * (all eight the largest originals together, then all eight the smallest). One single-connection autocannon per
 * connection, each with the list rotated, spreads the image sizes over time as independent clients would.
 */
export async function drive (url: string, images: Buffer[], connections: number, seconds: number): Promise<LoadResult> {
  const latencies: number[] = []
  const statuses: Record<string, number> = {}
  // Latency is timed per connection from the moment each request is built to its response, connection set-up
  // included: autocannon's own response time is wrong for servers that close the connection after every
  // response, as Flask's development server does (it grew with every request on one connection).
  type Timed = object & { sentAt?: number }
  const uploads = images.map((image, i) => fileUpload(image, `slice-${i}.jpg`))
  const requestsFrom = (first: number): autocannon.Request[] => uploads.map((_, k) => {
    const { payload, headers } = uploads[(first + k) % uploads.length]
    return {
      method: 'POST' as const,
      path: '/predict',
      headers,
      body: payload,
      setupRequest: (request, context: Timed) => {
        context.sentAt = performance.now()
        return request
      },
      onResponse: (status, _body, context: Timed) => {
        latencies.push(performance.now() - (context.sentAt ?? NaN))
        statuses[status] = (statuses[status] ?? 0) + 1
      }
    }
  })
  const cpuBefore = process.cpuUsage()
  const results = await Promise.all(Array.from({ length: connections }, async (_, i) => await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon({ url, connections: 1, duration: seconds, requests: requestsFrom(Math.floor(i * uploads.length / connections)), timeout: 30 },
      (error, result) => error != null ? reject(error) : resolve(result))
  })))
  const cpu = process.cpuUsage(cpuBefore)
  latencies.sort((a, b) => a - b)
  const non2xx = Object.entries(statuses).filter(([code]) => !code.startsWith('2')).reduce((n, [, count]) => n + count, 0)
  return {
    connections,
    seconds,
    responses: latencies.length,
    requestsPerSecond: latencies.length / seconds,
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN },
    errors: results.reduce((n, r) => n + r.errors + r.timeouts, 0) + non2xx,
    loadGeneratorCores: Number(((cpu.user + cpu.system) / 1e6 / seconds).toFixed(3)),
    statuses
  }
}
