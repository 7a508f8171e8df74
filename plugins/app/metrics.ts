import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { StageTimings } from '../../inference/classifier.js'
import type { DecoderPoolStats } from '../../inference/dicom/decoder-pool.js'
import { RECORD_KINDS } from '../../records/store.js'
import type { ModelState } from './classifier.js'
import { DicomMetrics } from './dicom-metrics.js'

const MODEL_STATES: ModelState[] = ['loading', 'ready', 'failed']
/** The results of a FHIR push attempt (plugins/app/fhir-push.ts). */
const FHIR_PUSH_RESULTS = ['accepted', 'failed', 'gave_up', 'unchanged'] as const
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

  readonly errors = new Counter({
    name: 'kidney_http_errors_total',
    help: 'Typed error answers, by route, status code and the body\'s code (QUEUE_FULL, OVERLOADED, INTERNAL_ERROR, ...).',
    labelNames: ['route', 'status_code', 'code'] as const,
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

  readonly recordsWritten = this.counterByKind('kidney_records_written_total',
    'Records committed to the records store, by kind (prediction, audit, failed-instance).')

  readonly recordsWriteFailures = this.counterByKind('kidney_records_write_failures_total',
    'Records that could not be written, by kind; a prediction among them was answered 503 RECORDS_UNAVAILABLE unless RECORDS_REQUIRED=false.')

  readonly recordsLost = this.counterByKind('kidney_records_lost_total',
    'Answers given without a record (RECORDS_REQUIRED=false) and refusals whose audit event could not be written, by kind.')

  readonly recordsWithdrawn = new Counter({
    name: 'kidney_records_withdrawn_total',
    help: 'Committed prediction records removed again because their answer was not given after all (the upload could not be kept, or the request had been answered 408), by result: ok, or failed (the record stays; the log names its id).',
    labelNames: ['result'] as const,
    registers: [this.registry]
  })

  readonly recordsWriteDuration = new Histogram({
    name: 'kidney_records_write_duration_seconds',
    help: 'Duration of one group write (one INSERT carrying every record queued meanwhile), by kind.',
    labelNames: ['kind'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry]
  })

  readonly recordsWriteRows = new Histogram({
    name: 'kidney_records_write_rows',
    help: 'Records per group write, by kind.',
    labelNames: ['kind'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry]
  })

  readonly fhirPushes = new Counter({
    name: 'kidney_fhir_pushes_total',
    help: 'FHIR push attempts (FHIR_SERVER_URL), by result: accepted, failed (retried after its backoff), gave_up (not ' +
      'retried: a 4xx other than 408/429, a redirect, or the FHIR_PUSH_MAX_ATTEMPTS-th failure), unchanged (the report ' +
      'accepted last, not sent again).',
    labelNames: ['result'] as const,
    registers: [this.registry]
  })

  readonly recordsSwept = this.counterByKind('kidney_records_swept_total', 'Records deleted by the retention sweep (RECORD_RETENTION), by kind.')

  /** Set once the classifier is loaded. */
  queuedSource: () => number = () => 0
  readonly queued = new Gauge({
    name: 'kidney_inference_queued',
    help: 'Images waiting for a decode slot or for a batch at scrape time.',
    registers: [this.registry],
    collect: () => { this.queued.set(this.queuedSource()) }
  })

  /** Set by the readiness plugin: what GET /health/ready would answer. */
  readySource: () => Promise<boolean> = async () => false
  readonly ready = new Gauge({
    name: 'kidney_ready',
    help: '1 when GET /health/ready answers 200 (the service takes predictions), else 0.',
    registers: [this.registry],
    collect: async () => { this.ready.set(await this.readySource() ? 1 : 0) }
  })

  modelStateSource: () => ModelState = () => 'loading'
  readonly modelState = new Gauge({
    name: 'kidney_model_state',
    help: '1 for the model\'s current state (loading, ready, failed: not loaded, or its runtime stopped), 0 for the others.',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => {
      const current = this.modelStateSource()
      for (const state of MODEL_STATES) this.modelState.set({ state }, state === current ? 1 : 0)
    }
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

  readonly dicom: DicomMetrics

  /** `allowedAes`: DICOM_ALLOWED_AES, the calling AE titles that are labels of their own (DicomMetrics.callingAeLabel). */
  constructor (allowedAes: readonly string[]) {
    collectDefaultMetrics({ register: this.registry })
    this.dicom = new DicomMetrics(this.registry, allowedAes)
    this.exportRecordFailuresAtZero()
  }

  /** The records and FHIR push counters alerts watch, at 0 from the start (DicomMetrics says why): a failure is often the only one after a start. */
  private exportRecordFailuresAtZero (): void {
    for (const kind of RECORD_KINDS) for (const counter of [this.recordsWriteFailures, this.recordsLost]) counter.inc({ kind }, 0)
    for (const result of ['ok', 'failed']) this.recordsWithdrawn.inc({ result }, 0)
    for (const result of FHIR_PUSH_RESULTS) this.fhirPushes.inc({ result }, 0)
  }

  /** A counter of records by `kind` (prediction, audit). */
  private counterByKind (name: string, help: string): Counter<'kind'> {
    return new Counter({ name, help, labelNames: ['kind'] as const, registers: [this.registry] })
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
  // With the node off DICOM_ALLOWED_AES is not read, nor judged (dicom-node-config.ts): its titles are no labels.
  const metrics = new ServiceMetrics(app.config.dicomNode.port === undefined ? [] : app.config.dicomNode.allowedAes)
  metrics.modelStateSource = () => app.model.state
  metrics.inflightSource = () => app.inflight.used
  app.decorate('metrics', metrics)

  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      method: request.method,
      route: request.routeOptions.url ?? 'unmatched',
      status_code: String(reply.statusCode)
    }
    metrics.requests.inc(labels)
    if (reply.errorCode !== undefined) metrics.errors.inc({ route: labels.route, status_code: labels.status_code, code: reply.errorCode })
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
}, { name: 'metrics', dependencies: ['config', 'model', 'inflight'] })
