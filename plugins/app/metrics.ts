import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { StageTimings } from '../../inference/classifier.js'
import type { DecoderPoolStats } from '../../inference/dicom/decoder-pool.js'

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * Prometheus metrics of one app instance, in its own registry (tests build many apps in one process):
 * request counts and durations by route and status, the batch sizes the micro-batcher actually ran, the time
 * requests waited for decoding and for a batch, every stage's duration, and Node's process metrics.
 */
export class ServiceMetrics {
  readonly registry = new Registry()
  readonly requests = new Counter({
    name: 'kidney_http_requests_total',
    help: 'HTTP requests answered, by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry]
  })

  readonly requestDuration = new Histogram({
    name: 'kidney_http_request_duration_seconds',
    help: 'Time from request start to response, by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry]
  })

  readonly batchSize = new Histogram({
    name: 'kidney_batch_size',
    help: 'Images per onnxruntime call run by the micro-batcher.',
    buckets: [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64],
    registers: [this.registry]
  })

  readonly batchDuration = new Histogram({
    name: 'kidney_batch_duration_seconds',
    help: 'Duration of one batched onnxruntime call.',
    buckets: SECONDS_BUCKETS,
    registers: [this.registry]
  })

  readonly stageDuration = new Histogram({
    name: 'kidney_stage_duration_seconds',
    help: 'Per-image stage durations: imageWait (queued for a decode slot), decode (decode + resize), batchWait (queued for a batch), ' +
      'preprocess (normalising the batch that carried the image), inference (the onnxruntime run of that batch).',
    labelNames: ['stage'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry]
  })

  /** Set once the classifier is loaded. */
  queuedSource: () => number = () => 0
  readonly queued = new Gauge({
    name: 'kidney_inference_queued',
    help: 'Images waiting for a decode slot or for a batch at scrape time.',
    registers: [this.registry],
    collect: () => { this.queued.set(this.queuedSource()) }
  })

  /** Set by the plugin: the in-flight byte budget in use, and the DICOM decoder pool's counters once loaded. */
  inflightSource: () => number = () => 0
  decoderSource: () => DecoderPoolStats | undefined = () => undefined
  readonly inflight = new Gauge({
    name: 'kidney_inflight_bytes',
    help: 'Bytes of request bodies and decoded images held at scrape time (the MAX_INFLIGHT_BYTES budget in use).',
    registers: [this.registry],
    collect: () => { this.inflight.set(this.inflightSource()) }
  })

  readonly decoderEvents = new Gauge({
    name: 'kidney_dicom_decoder_files',
    help: 'DICOM files since start by what their decoder thread did: decoded, timed_out (thread replaced), ' +
      'recycled (thread replaced after the file for the memory it kept), crashed (thread stopped on the file).',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: () => {
      const stats = this.decoderSource()
      if (stats === undefined) return
      for (const [event, count] of [['decoded', stats.decoded], ['timed_out', stats.timedOut], ['recycled', stats.recycled], ['crashed', stats.crashed]] as const) {
        this.decoderEvents.set({ event }, count)
      }
    }
  })

  constructor () {
    collectDefaultMetrics({ register: this.registry })
  }

  observeStages (timings: StageTimings): void {
    for (const [stage, ms] of Object.entries(timings)) this.stageDuration.observe({ stage }, ms / 1000)
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ServiceMetrics
  }
}

export default fp(async (app) => {
  const metrics = new ServiceMetrics()
  metrics.inflightSource = () => app.inflight.used
  app.decorate('metrics', metrics)

  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status_code: String(reply.statusCode)
    }
    metrics.requests.inc(labels)
    metrics.requestDuration.observe(labels, reply.elapsedTime / 1000)
  })

  let unsubscribe: (() => void) | undefined
  app.model.loaded.then((classifier) => {
    metrics.queuedSource = () => classifier.queued
    metrics.decoderSource = () => classifier.dicomDecoders.stats
    unsubscribe = classifier.observe({
      batch: (size, ms) => {
        metrics.batchSize.observe(size)
        metrics.batchDuration.observe(ms / 1000)
      },
      classified: (timings) => metrics.observeStages(timings)
    })
  }, () => {})
  app.addHook('onClose', async () => unsubscribe?.())
}, { name: 'metrics', dependencies: ['model', 'inflight'] })
