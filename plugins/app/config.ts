import { resolve } from 'node:path'
import fp from 'fastify-plugin'
import type { Static, TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { WindowSource } from '../../inference/dicom/decode-dicom.js'
import type { DecoderPoolOptions } from '../../inference/dicom/decoder-pool.js'
import { AuthConfigError, loadAuthConfig, type AuthConfig } from './auth-config.js'
import { dicomNodeFrom, dicomNodeRefusal, type DicomNodeSettings } from './dicom-node-config.js'
import { EnvSchema, type Env } from './env-schema.js'
import { envValueMessage } from './env-value-message.js'
import { isLoopback, loadRecordsConfig, RecordsConfigError, studyOwnersOf, type RecordsConfig } from './records-config.js'
import { FhirPushConfigError, loadFhirPushConfig, type FhirPushConfig } from './fhir-push-config.js'
import { originProblem } from './cors-config.js'
import { trustProxyOf } from './trust-proxy-config.js'

export interface AppConfig {
  port: number
  host: string
  logLevel: Env['LOG_LEVEL']
  modelPath: string
  /** Where a Keras MODEL_PATH is converted to ONNX, by the file's sha256. */
  modelCacheDir: string
  /** Class names (output order) and pixel scale of a Keras model; unset: its sidecar or the defaults. */
  modelClasses?: string[]
  modelScale?: number
  uploadDir: string
  /** Milliseconds an upload is kept; 0 keeps nothing on disk. */
  uploadMaxAgeMs: number
  uploadMaxFiles: number
  maxFileBytes: number
  maxPixels: number
  /** Overrides the model's DICOM input window (HU); unset: the sidecar's `input.window`, else abdomen 40/400. */
  dicomWindow?: { center: number, width: number }
  /** `model`: the model's window whatever the file carries; `file`: the file's first window when it has one. */
  dicomWindowSource: WindowSource
  /** Modality (0008,0060) values classified; anything else is 422 UNSUPPORTED_MODALITY. */
  dicomModalities: string[]
  /** Frames of one DICOM object classified at most (TOO_MANY_FRAMES above). */
  dicomMaxFrames: number
  /** Files one POST /predict/batch request may carry. */
  batchMaxFiles: number
  /** Instances (parts) one STOW-RS request may carry. */
  stowMaxInstances: number
  intraOpThreads: number
  interOpThreads: number
  graphOptimization: Env['ORT_GRAPH_OPTIMIZATION']
  batchMaxSize: number
  /** How long a lone request may wait for others to share its model call, in microseconds. */
  batchMaxDelayUs: number
  /** Requests allowed to wait for decoding, and again for a batch; beyond that: 503 QUEUE_FULL. */
  batchMaxQueue: number
  /** Images decoded and resized at the same time. */
  sharpConcurrency: number
  /** DICOM decoder threads: how many, files waiting for one, time per file, memory a thread may keep. */
  dicomDecoders: DecoderPoolOptions
  /** Largest non-multipart body (JSON, text); multipart is bounded by the file and field limits. */
  bodyLimitBytes: number
  maxFields: number
  maxFieldBytes: number
  headersTimeoutMs: number
  /** Time for the whole request (headers and body) to arrive: a slowly trickled upload is cut off here. */
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
  /** A request still unanswered this long after it arrived gets 408 and its connection is closed. */
  handlerTimeoutMs: number
  /** In-flight requests get this long to finish after SIGTERM/SIGINT before the process exits anyway. */
  shutdownGraceMs: number
  rateLimit: { max: number, windowMs: number }
  pressure: PressureLimits
  /** Request bodies and decoded images held at once; a request that would exceed it is refused (503, or 413 alone). */
  maxInflightBytes: number
  /** Uploads still arriving `afterMs` after they began are slow; together they hold at most `maxBytes` of maxInflightBytes. */
  slowUploads: { afterMs: number, maxBytes: number }
  /** Seconds memory may stay above the pressure limits before liveness fails (0: never). */
  livenessMemoryGraceS: number
  /** Fastify's trustProxy: whose X-Forwarded-For address is the client's (rate limit, logs). */
  trustProxy: boolean | string[]
  auth: AuthConfig
  /** Allowed browser origins; empty: no cross-origin access; '*': any origin. */
  corsOrigins: string[]
  records: RecordsConfig
  /** Study results: a series is final after idleSeconds without a new instance; k of the series conclusion rule. */
  series: { idleSeconds: number, minAdjacentSlices: number }
  dicomNode: DicomNodeSettings
  /** Where final studies' DiagnosticReports are POSTed (undefined: no push), how often a push is tried, the bearer token. */
  fhirPush: FhirPushConfig
}

export interface PressureLimits {
  maxEventLoopDelayMs: number
  maxEventLoopUtilization: number
  maxHeapUsedBytes: number
  maxRssBytes: number
  retryAfterS: number
}

export class ConfigError extends Error {}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

const MAX_RECORD_RETENTION_MS = 365_000 * UNIT_MS.d

function durationMs (value: string): number {
  if (value === 'none') return 0
  return Number(value.slice(0, -1)) * UNIT_MS[value.at(-1) as keyof typeof UNIT_MS]
}

/**
 * RECORD_RETENTION in ms, 0 for forever. A zero age would have every record deleted as it is written (records are the
 * failure policy's proof that an answer was given), and one beyond about 2,000 years puts the sweep's cutoff before the
 * year 0001, which the database cannot compare with: the sweep failed every minute. Both are refused. So is an age
 * not longer than SERIES_IDLE_SECONDS while records are kept: a series' instances were deleted before it was final, so
 * GET /studies never called a series final (404 once swept) and the FHIR push never sent a study, without a word.
 */
function recordRetentionMs (value: string, seriesIdleSeconds: number, recordsOff: boolean): number {
  if (value === 'forever') return 0
  const ms = durationMs(value)
  if (ms === 0 || ms > MAX_RECORD_RETENTION_MS) {
    throw new ConfigError(`Invalid environment variable RECORD_RETENTION=${value}: give an age above zero and up to 1000 years (365000d), or forever to keep everything`)
  }
  if (!recordsOff && ms <= seriesIdleSeconds * 1000) {
    throw new ConfigError(`Invalid environment variable RECORD_RETENTION=${value}: records must be kept longer than SERIES_IDLE_SECONDS (${seriesIdleSeconds} s), or a study's instances are deleted before its series are final: GET /studies would never call them final and the FHIR push never send them`)
  }
  return ms
}

function validated<T extends TSchema> (schema: T, raw: Record<string, unknown>): Static<T> {
  // Value.Convert truncates '1.5' to 1 for an integer: DICOM_IDLE_TIMEOUT_S=1.5 would silently become 1 s.
  for (const [name, property] of Object.entries((schema as { properties?: Record<string, TSchema> }).properties ?? {})) {
    const text = raw[name]
    if (property.type === 'integer' && typeof text === 'string' && !/^\s*[-+]?\d+\s*$/.test(text)) {
      throw new ConfigError(envValueMessage(name, text, property))
    }
  }
  const value = Value.Convert(schema, Value.Default(schema, raw))
  const error = Value.Errors(schema, value).First()
  if (error !== undefined) {
    const name = error.path.replace(/^\//, '')
    throw new ConfigError(envValueMessage(name, raw[name], error.schema))
  }
  return value as Static<T>
}

function trustProxyFrom (value: string): boolean | string[] {
  const trust = trustProxyOf(value)
  if (trust === undefined) {
    throw new ConfigError(`Invalid environment variable TRUST_PROXY=${JSON.stringify(value)}: give false, true, or the ` +
      'proxies\' addresses and CIDR ranges, comma-separated (e.g. 10.42.0.0/16,127.0.0.1)')
  }
  return trust
}

/** Reads the service's variables from `env` (only those; anything else in the environment is ignored). */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): AppConfig {
  const raw = Object.fromEntries(Object.keys(EnvSchema.properties)
    .filter((name) => env[name] !== undefined && env[name] !== '')
    .map((name) => [name, env[name]]))
  const e = validated(EnvSchema, raw)
  const auth = authConfigFrom(env, e)
  if (e.HEADERS_TIMEOUT_MS > e.REQUEST_TIMEOUT_MS) {
    throw new ConfigError(`Invalid environment variable HEADERS_TIMEOUT_MS=${e.HEADERS_TIMEOUT_MS}: must not exceed REQUEST_TIMEOUT_MS`)
  }
  if ((e.DICOM_WINDOW_CENTER === undefined) !== (e.DICOM_WINDOW_WIDTH === undefined)) {
    throw new ConfigError('Invalid environment variables DICOM_WINDOW_CENTER / DICOM_WINDOW_WIDTH: set both or neither')
  }
  const dicomNodeRefused = dicomNodeRefusal(e)
  if (dicomNodeRefused !== undefined) throw new ConfigError(dicomNodeRefused)
  const corsOrigins = e.CORS_ORIGINS.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  const corsProblem = corsOrigins.map(originProblem).find((problem) => problem !== undefined)
  if (corsProblem !== undefined) throw new ConfigError(`Invalid environment variable CORS_ORIGINS: ${corsProblem}`)
  if (e.MAX_INFLIGHT_BYTES < e.MAX_FILE_BYTES) {
    throw new ConfigError(`Invalid environment variable MAX_INFLIGHT_BYTES=${e.MAX_INFLIGHT_BYTES}: must be at least MAX_FILE_BYTES (${e.MAX_FILE_BYTES})`)
  }
  return {
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    modelPath: resolve(e.MODEL_PATH),
    modelCacheDir: resolve(e.MODEL_CACHE_DIR),
    modelClasses: e.MODEL_CLASSES?.split(',').map((name) => name.trim()),
    modelScale: e.MODEL_SCALE,
    uploadDir: resolve(e.UPLOAD_DIR),
    uploadMaxAgeMs: durationMs(e.UPLOAD_RETENTION),
    uploadMaxFiles: e.UPLOAD_MAX_FILES,
    maxFileBytes: e.MAX_FILE_BYTES,
    maxPixels: e.MAX_PIXELS,
    ...(e.DICOM_WINDOW_CENTER === undefined || e.DICOM_WINDOW_WIDTH === undefined ? {} : { dicomWindow: { center: e.DICOM_WINDOW_CENTER, width: e.DICOM_WINDOW_WIDTH } }),
    dicomWindowSource: e.DICOM_WINDOW_SOURCE,
    dicomModalities: e.DICOM_MODALITIES.split(',').map((name) => name.trim()),
    dicomMaxFrames: e.DICOM_MAX_FRAMES,
    batchMaxFiles: e.BATCH_MAX_FILES,
    stowMaxInstances: e.STOW_MAX_INSTANCES,
    intraOpThreads: e.ORT_INTRA_OP_THREADS,
    interOpThreads: e.ORT_INTER_OP_THREADS,
    graphOptimization: e.ORT_GRAPH_OPTIMIZATION,
    batchMaxSize: e.BATCH_MAX_SIZE,
    batchMaxDelayUs: e.BATCH_MAX_DELAY_US,
    batchMaxQueue: e.BATCH_MAX_QUEUE,
    sharpConcurrency: e.SHARP_CONCURRENCY,
    dicomDecoders: {
      workers: e.DECODE_WORKERS,
      maxQueue: e.DECODE_QUEUE,
      timeoutMs: e.DECODE_TIMEOUT_MS,
      maxWorkerMemoryBytes: e.DECODE_WORKER_MAX_MEMORY_BYTES
    },
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    maxFields: e.MAX_FIELDS,
    maxFieldBytes: e.MAX_FIELD_BYTES,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    handlerTimeoutMs: e.HANDLER_TIMEOUT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS },
    pressure: {
      maxEventLoopDelayMs: e.PRESSURE_MAX_EVENT_LOOP_DELAY_MS,
      maxEventLoopUtilization: e.PRESSURE_MAX_EVENT_LOOP_UTILIZATION,
      maxHeapUsedBytes: e.PRESSURE_MAX_HEAP_BYTES,
      maxRssBytes: e.PRESSURE_MAX_RSS_BYTES,
      retryAfterS: e.PRESSURE_RETRY_AFTER_S
    },
    maxInflightBytes: e.MAX_INFLIGHT_BYTES,
    // Never less than one file of MAX_FILE_BYTES: a slow link can always upload one.
    slowUploads: { afterMs: e.SLOW_UPLOAD_AFTER_MS, maxBytes: Math.max(e.MAX_FILE_BYTES, Math.floor(e.SLOW_UPLOADS_SHARE * e.MAX_INFLIGHT_BYTES)) },
    livenessMemoryGraceS: e.LIVENESS_MEMORY_GRACE_S,
    trustProxy: trustProxyFrom(e.TRUST_PROXY),
    auth,
    corsOrigins,
    records: recordsConfigFrom(env, e, auth.mode !== 'none'),
    series: { idleSeconds: e.SERIES_IDLE_SECONDS, minAdjacentSlices: e.SERIES_MIN_ADJACENT_SLICES },
    dicomNode: dicomNodeFrom(e),
    fhirPush: fhirPushConfigFrom(env, e)
  }
}

function recordsConfigFrom (env: NodeJS.ProcessEnv, e: Env, authOn: boolean): RecordsConfig {
  // A loopback bind is reached from this machine alone, unless a reverse proxy on it forwards the network's requests:
  // TRUST_PROXY says one does (nginx terminating TLS in front of the default HOST=127.0.0.1).
  const thisMachineOnly = isLoopback(e.HOST) && trustProxyOf(e.TRUST_PROXY) === false
  try {
    return loadRecordsConfig(env, {
      store: e.RECORDS_STORE,
      dataDir: resolve(e.DATA_DIR),
      stallLimitMs: e.PGLITE_STALL_LIMIT_S * 1000,
      poolSize: e.DATABASE_POOL_SIZE,
      timeoutMs: e.DATABASE_TIMEOUT_MS,
      migrationTimeoutMs: e.DATABASE_MIGRATION_TIMEOUT_MS,
      retentionMs: recordRetentionMs(e.RECORD_RETENTION, e.SERIES_IDLE_SECONDS, e.RECORDS_STORE === 'off'),
      required: e.RECORDS_REQUIRED,
      api: e.RECORDS_API === undefined ? authOn || thisMachineOnly : e.RECORDS_API === 'on',
      readAllScope: e.RECORDS_READ_ALL_SCOPE,
      studyOwners: studyOwnersOf(e.STUDY_OWNERS)
    })
  } catch (error) {
    if (error instanceof RecordsConfigError || error instanceof AuthConfigError) throw new ConfigError(`Invalid records settings: ${error.message}`)
    throw error
  }
}

function fhirPushConfigFrom (env: NodeJS.ProcessEnv, e: Env): FhirPushConfig {
  try {
    return loadFhirPushConfig(env, e.FHIR_SERVER_URL, e.FHIR_PUSH_MAX_ATTEMPTS)
  } catch (error) {
    if (error instanceof FhirPushConfigError) throw new ConfigError(`Invalid FHIR push settings: ${error.message}`)
    throw error
  }
}

function authConfigFrom (env: NodeJS.ProcessEnv, e: Env): AuthConfig {
  try {
    return loadAuthConfig(env, {
      mode: e.AUTH_MODE,
      apiKeyHeader: e.AUTH_API_KEY_HEADER,
      issuer: e.AUTH_JWT_ISSUER,
      audience: e.AUTH_JWT_AUDIENCE,
      clockToleranceS: e.AUTH_JWT_CLOCK_TOLERANCE_S,
      scopeClaim: e.AUTH_JWT_SCOPE_CLAIM,
      docsPublic: e.AUTH_DOCS === 'public',
      metricsPublic: e.AUTH_METRICS === 'public'
    })
  } catch (error) {
    if (error instanceof AuthConfigError) throw new ConfigError(`Invalid authentication settings: ${error.message}`)
    throw error
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    config: AppConfig
  }
}

export default fp<{ config: AppConfig }>(async (app, { config }) => {
  app.decorate('config', config)
}, { name: 'config' })
