import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Type, type Static, type TInteger } from '@sinclair/typebox'
import { SECRET_VARIABLES } from './auth-config.js'

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)))

// Node runs a timer set longer than 2^31 - 1 ms after 1 ms instead (TimeoutOverflowWarning): HANDLER_TIMEOUT_MS=2147483648
// answered every request 408 at once, DECODE_TIMEOUT_MS so every DICOM file 422 DECODE_TIMEOUT. A duration is bounded to
// what a timer can wait, about 24.8 days.
const MAX_TIMER_MS = 2_147_483_647
const timerMs = (minimum: number, defaultMs: number): TInteger => Type.Integer({ minimum, maximum: MAX_TIMER_MS, default: defaultMs })
const timerSeconds = (minimum: number, defaultSeconds: number): TInteger =>
  Type.Integer({ minimum, maximum: Math.floor(MAX_TIMER_MS / 1000), default: defaultSeconds })

/**
 * Every environment variable the service reads, with its default. Validated once at start-up: a bad value
 * stops the process with a message naming the variable. docs/operations.md documents each (test/docs.test.ts).
 */
export const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  LOG_LEVEL: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'),
    Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info' }),
  MODEL_PATH: Type.String({ minLength: 1, default: resolve(repoRoot, 'model/kidney-stone-cnn.onnx') }),
  // A Keras .h5/.keras MODEL_PATH is converted once into MODEL_CACHE_DIR (inference/keras/serve.ts); the two
  // MODEL_* below give what a Keras file does not record, over the `<model>.json` next to it.
  MODEL_CACHE_DIR: Type.String({ minLength: 1, default: resolve(repoRoot, 'var/model-cache') }),
  MODEL_CLASSES: Type.Optional(Type.String({ pattern: '^[^,]+(,[^,]+)+$' })),
  MODEL_SCALE: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  UPLOAD_DIR: Type.String({ minLength: 1, default: resolve(repoRoot, 'var/uploads') }),
  UPLOAD_RETENTION: Type.String({ pattern: '^(none|[0-9]+[smhd])$', default: '24h' }),
  UPLOAD_MAX_FILES: Type.Integer({ minimum: 1, default: 10000 }),
  MAX_FILE_BYTES: Type.Integer({ minimum: 1, default: 20 * 1024 * 1024 }),
  MAX_PIXELS: Type.Integer({ minimum: 1, default: 40_000_000 }),
  // DICOM input (inference/dicom/): HU are windowed with the model's input window (sidecar input.window, else
  // abdomen 40/400) whatever the file carries; the two DICOM_WINDOW_* override it (both or neither).
  DICOM_WINDOW_SOURCE: Type.Union([Type.Literal('model'), Type.Literal('file')], { default: 'model' }),
  DICOM_WINDOW_CENTER: Type.Optional(Type.Number()),
  DICOM_WINDOW_WIDTH: Type.Optional(Type.Number({ minimum: 1 })),
  // Modalities classified (Modality (0008,0060)); OT/SC 8-bit display images are read as display images too.
  // Frames of one multi-frame DICOM object (enhanced CT): each is classified; the header is refused above this.
  DICOM_MAX_FRAMES: Type.Integer({ minimum: 1, maximum: 1000, default: 300 }),
  DICOM_MODALITIES: Type.String({ pattern: '^[A-Z0-9]{1,16}( *, *[A-Z0-9]{1,16})*$', default: 'CT' }),
  BATCH_MAX_FILES: Type.Integer({ minimum: 1, default: 32 }),
  // Parts of one STOW-RS request: each is parsed and answered on the main thread, however few bytes it has.
  STOW_MAX_INSTANCES: Type.Integer({ minimum: 1, default: 1000 }),
  // Measured on the 2-core machine (bench/, docs/performance.md): one onnxruntime thread leaves the other core to
  // decode and resize the next images, which beats two threads competing with sharp.
  ORT_INTRA_OP_THREADS: Type.Integer({ minimum: 0, default: 1 }),
  ORT_INTER_OP_THREADS: Type.Integer({ minimum: 0, default: 1 }),
  ORT_GRAPH_OPTIMIZATION: Type.Union([Type.Literal('disabled'), Type.Literal('basic'), Type.Literal('extended'),
    Type.Literal('all')], { default: 'all' }),
  // Micro-batching and image decoding (inference/batcher.ts, inference/classifier.ts).
  BATCH_MAX_SIZE: Type.Integer({ minimum: 1, default: 8 }),
  BATCH_MAX_DELAY_US: Type.Integer({ minimum: 0, default: 0 }),
  BATCH_MAX_QUEUE: Type.Integer({ minimum: 1, default: 64 }),
  SHARP_CONCURRENCY: Type.Integer({ minimum: 1, default: 2 }),
  // DICOM decoder threads (inference/dicom/decoder-pool.ts): never on the event loop, each file bounded in time and memory.
  DECODE_WORKERS: Type.Integer({ minimum: 1, default: 2 }),
  DECODE_QUEUE: Type.Integer({ minimum: 0, default: 32 }),
  DECODE_TIMEOUT_MS: timerMs(1, 15_000),
  DECODE_WORKER_MAX_MEMORY_BYTES: Type.Integer({ minimum: 32 * 1024 * 1024, default: 256 * 1024 * 1024 }),

  // Request limits: what one request may carry and how long it may take to arrive.
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1, default: 1024 * 1024 }),
  MAX_FIELDS: Type.Integer({ minimum: 0, default: 10 }),
  MAX_FIELD_BYTES: Type.Integer({ minimum: 1, default: 1024 }),
  HEADERS_TIMEOUT_MS: timerMs(1, 10_000),
  REQUEST_TIMEOUT_MS: timerMs(1, 60_000),
  KEEP_ALIVE_TIMEOUT_MS: timerMs(1, 5_000),
  HANDLER_TIMEOUT_MS: timerMs(1, 120_000),
  SHUTDOWN_GRACE_MS: timerMs(1, 10_000),

  // Overload: 0 switches a check off. Ten 300-slice series a minute per client, one slice per request as the CLI
  // sends them; above the CLI's measured sequential rate (bench/series.ts, docs/operations.md "Rate limit").
  RATE_LIMIT_MAX: Type.Integer({ minimum: 0, default: 3000 }),
  RATE_LIMIT_WINDOW_MS: timerMs(1, 60_000),
  PRESSURE_MAX_EVENT_LOOP_DELAY_MS: timerMs(0, 0),
  PRESSURE_MAX_EVENT_LOOP_UTILIZATION: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
  PRESSURE_MAX_HEAP_BYTES: Type.Integer({ minimum: 0, default: 1024 ** 3 }),
  PRESSURE_MAX_RSS_BYTES: Type.Integer({ minimum: 0, default: 3 * 1024 ** 3 }),
  PRESSURE_RETRY_AFTER_S: timerSeconds(1, 10),
  // Bytes of request bodies and decoded images held at once, by all requests together (plugins/app/inflight.ts).
  MAX_INFLIGHT_BYTES: Type.Integer({ minimum: 1, default: 512 * 1024 ** 2 }),
  // An upload still arriving this long after it began is slow; slow uploads together hold at most this share of it.
  SLOW_UPLOAD_AFTER_MS: timerMs(1, 10_000),
  SLOW_UPLOADS_SHARE: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.25 }),
  // Seconds memory may stay above PRESSURE_MAX_RSS_BYTES / PRESSURE_MAX_HEAP_BYTES before /health/live fails; 0: never.
  LIVENESS_MEMORY_GRACE_S: timerSeconds(0, 60),
  // false, true, or the proxies' addresses and CIDR ranges (trust-proxy-config.ts).
  TRUST_PROXY: Type.String({ default: 'false' }),

  // Authentication (keys and secrets are read in auth-config.ts, from the variable or its *_FILE twin).
  AUTH_MODE: Type.Union([Type.Literal('none'), Type.Literal('api-key'), Type.Literal('jwt'), Type.Literal('any')],
    { default: 'none' }),
  AUTH_API_KEY_HEADER: Type.String({ pattern: '^[A-Za-z0-9-]+$', default: 'x-api-key' }),
  AUTH_JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  AUTH_JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  AUTH_JWT_CLOCK_TOLERANCE_S: Type.Integer({ minimum: 0, default: 5 }),
  AUTH_DOCS: Type.Union([Type.Literal('public'), Type.Literal('protected')], { default: 'public' }),
  AUTH_METRICS: Type.Union([Type.Literal('public'), Type.Literal('protected')], { default: 'protected' }),
  // Where a JWT carries its scopes: a claim name, a namespaced one included (https://hospital.example/scopes), or a
  // dotted path (e.g. realm_access.roles); unset: `scope`, then `scp`.
  AUTH_JWT_SCOPE_CLAIM: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_:/-]+(\\.[A-Za-z0-9_:/-]+)*$' })),
  CORS_ORIGINS: Type.String({ default: '' }),

  // Records (records/, plugins/app/records.ts). DATABASE_URL is read like a secret (also DATABASE_URL_FILE), not here.
  DATA_DIR: Type.String({ minLength: 1, default: resolve(repoRoot, 'var/data') }),
  // An embedded database that answers no statement for this long is stopped (records/pglite-driver.ts); at least a
  // minute: the first maintenance of a large database holds it about 2 s per million rows (docs/records.md).
  PGLITE_STALL_LIMIT_S: Type.Integer({ minimum: 60, maximum: 86_400, default: 600 }),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, default: 5 }),
  // At most a day: a row may commit twice this after its created_at (latestCommitMs in records/store.ts), which the FHIR
  // push sweep's window must cover, and that window reads at most 7 days (push-queue.ts).
  DATABASE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 86_400_000, default: 5_000 }),
  // At most a day: the client's wait is a Node.js timer, which fires at once past 2^31-1 ms (24.8 days).
  DATABASE_MIGRATION_TIMEOUT_MS: Type.Integer({ minimum: 1_000, maximum: 86_400_000, default: 1_800_000 }),
  RECORDS_STORE: Type.Optional(Type.Union([Type.Literal('pglite'), Type.Literal('postgres'), Type.Literal('off')])),
  RECORD_RETENTION: Type.String({ pattern: '^(forever|[0-9]+[smhd])$', default: '365d' }),
  RECORDS_REQUIRED: Type.Boolean({ default: true }),
  RECORDS_API: Type.Optional(Type.Union([Type.Literal('on'), Type.Literal('off')])),
  RECORDS_READ_ALL_SCOPE: Type.String({ pattern: '^\\S+$', default: 'records:read-all' }),

  // Series and study results (GET /studies/{uid}, inference/series-conclusion.ts).
  // At most a day: the FHIR push looks only at studies with an instance in the last 7 days (push-queue.ts), so a series
  // idle longer than that was never final to it, and its report never sent.
  SERIES_IDLE_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 30 }),
  SERIES_MIN_ADJACENT_SLICES: Type.Integer({ minimum: 1, default: 2 }),
  // Callers that may own a study (records/study-owner.ts), checked in records-config.ts; empty: any caller.
  STUDY_OWNERS: Type.String({ default: '' }),
  // The DICOM node (dicom-node/): off unless DICOM_PORT is set.
  DICOM_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  // Judged as AE titles only when the node is on (dicom-node-config.ts dicomNodeRefusal).
  DICOM_AE_TITLE: Type.String({ default: 'KIDNEYSTONE' }),
  DICOM_ALLOWED_AES: Type.String({ default: '' }),
  DICOM_MAX_ASSOCIATIONS: Type.Integer({ minimum: 1, default: 8 }),
  // Associations at once per calling AE title; unset: two of DICOM_MAX_ASSOCIATIONS kept for others (dicomNodeFrom).
  DICOM_MAX_ASSOCIATIONS_PER_AE: Type.Optional(Type.Integer({ minimum: 1 })),
  DICOM_MAX_PDU_BYTES: Type.Integer({ minimum: 4096, maximum: 16 * 1024 * 1024, default: 65536 }),
  DICOM_IDLE_TIMEOUT_S: timerSeconds(1, 60),
  // Instance bytes per second an association must send, judged over each DICOM_IDLE_TIMEOUT_S (0: not judged).
  DICOM_MIN_RATE_BYTES_S: Type.Integer({ minimum: 0, default: 8192 }),
  // FHIR push of final studies (plugins/app/fhir-push.ts): off unless FHIR_SERVER_URL is set.
  FHIR_SERVER_URL: Type.Optional(Type.String({ pattern: '^https?://\\S+$' })),
  FHIR_PUSH_MAX_ATTEMPTS: Type.Integer({ minimum: 1, default: 10 })
})

export type Env = Static<typeof EnvSchema>

/** Every environment variable the service reads (deployment manifests are checked against this list). */
export const CONFIG_VARIABLES: readonly string[] = [...Object.keys(EnvSchema.properties),
  ...Object.values(SECRET_VARIABLES).flatMap((name) => [name, `${name}_FILE`])]
