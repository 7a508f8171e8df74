import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import { Classifier } from '../inference/classifier.js'
import { MODEL_LOAD_RETRY_AFTER_SECONDS } from '../inference/errors.js'
import { loadClassifier } from '../plugins/app/classifier.js'
import { loadConfig } from '../plugins/app/config.js'
import { ErrorSchema } from '../schemas/error.js'
import { HealthSchema, ModelInfoSchema, ModelRefSchema, StatusSchema } from '../schemas/model.js'
import { build, ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

t.test('GET / reports the service, its version and the loaded model', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.ok(Value.Check(StatusSchema, [ModelRefSchema], body), 'matches the Status schema')
  t.equal(body.status, 'ready')
  t.equal(body.model.name, app.model.get().spec.name)
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'))
  t.equal(body.version, pkg.version)
})

t.test('health: live always, ready once the model is warmed up', async (t) => {
  const app = await build(t)
  const live = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(live.statusCode, 200)
  t.ok(Value.Check(HealthSchema, live.json()))
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })
})

t.test('while the model loads: ready and predict answer 503 MODEL_NOT_READY, live answers 200', async (t) => {
  let finishLoading!: (c: Classifier) => void
  const pending = new Promise<Classifier>((resolve) => { finishLoading = resolve })
  const app = await build(t, { loadClassifier: async () => await pending }, { waitForModel: false })

  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'MODEL_NOT_READY')
  t.equal((await app.inject({ method: 'GET', url: '/' })).json().status, 'loading')

  const predict = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(predict.statusCode, 503, predict.body)
  t.ok(Value.Check(ErrorSchema, predict.json()))
  t.equal(predict.json().code, 'MODEL_NOT_READY')
  // without Retry-After, client/retry.ts (and any careful script) would not retry a start-up it could simply wait out
  t.equal(predict.headers['retry-after'], String(MODEL_LOAD_RETRY_AFTER_SECONDS), 'Retry-After while the model loads')

  finishLoading(await loadClassifier(app.config))
  await app.model.loaded
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready once loaded')
})

t.test('while the model loads: GET /studies/{uid} answers as /predict does, 503 MODEL_NOT_READY, instead of waiting for the load', async (t) => {
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-studies-loading-')))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  let finishLoading!: (c: Classifier) => void
  const pending = new Promise<Classifier>((resolve) => { finishLoading = resolve })
  const app = await build(t, { loadClassifier: async () => await pending, config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir, api: true } } }, { waitForModel: false })
  await app.records.opened
  const url = '/studies/1.2.826.0.1.3680043.8.498.1'
  // Sent while the model loads, looked at once it has loaded: on the old code these were held until then and answered
  // 404 STUDY_NOT_FOUND; now they are answered at once, as /predict is.
  const studies = [app.inject({ method: 'GET', url }), app.inject({ method: 'GET', url, headers: { accept: 'application/fhir+json' } })]
  const predict = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(predict.statusCode, 503, predict.body)
  finishLoading(await loadClassifier(app.config))
  await app.model.loaded
  for (const study of await Promise.all(studies)) {
    t.equal(study.statusCode, predict.statusCode, study.body)
    t.same(study.json(), predict.json(), 'the same code and message as /predict')
    t.equal(study.headers['retry-after'], predict.headers['retry-after'], 'Retry-After as /predict')
  }
  t.equal((await app.inject({ method: 'GET', url })).json().code, 'STUDY_NOT_FOUND', 'once loaded, the study is looked up')
})

t.test('when the model runtime dies: ready and predict answer 503 MODEL_FAILED, GET / says failed', async (t) => {
  const app = await build(t)
  const classifier = app.model.get() as unknown as { session: { worker: Worker } }
  // a crash cannot be caused through the API: end the onnxruntime thread from outside, as a fatal error would
  // (idle here, after warm-up: terminated inside a native run it aborts the process, see session.test.ts)
  await classifier.session.worker.terminate()

  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'MODEL_FAILED')
  t.match(ready.json().message, /exited with code 1/, 'readiness names why the runtime stopped')
  t.equal((await app.inject({ method: 'GET', url: '/' })).json().status, 'failed')
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'the process itself is up')

  const predict = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(predict.statusCode, 503, predict.body)
  t.ok(Value.Check(ErrorSchema, predict.json()))
  t.equal(predict.json().code, 'MODEL_FAILED')
})

t.test('GET /model describes the served model from its sidecar and file', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/model' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.ok(Value.Check(ModelInfoSchema, body), 'matches the ModelInfo schema')
  const sha256 = createHash('sha256').update(await readFile(app.config.modelPath)).digest('hex')
  t.equal(body.sha256, sha256)
  t.same(body.classes.slice().sort(), ['Normal', 'Stone'])
  t.equal(body.input.shape[0], null, 'batch axis is dynamic')
  t.equal(body.threshold, app.model.get().spec.threshold)
})

t.test('the Swagger UI and the OpenAPI document are served', async (t) => {
  const app = await build(t)
  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  const doc = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(doc.statusCode, 200)
  t.ok(doc.json().paths['/predict'].post, 'documents POST /predict')
})

t.test('unknown routes get a typed 404', async (t) => {
  const app = await build(t)
  const res = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(res.statusCode, 404)
  t.ok(Value.Check(ErrorSchema, res.json()))
  t.equal(res.json().code, 'NOT_FOUND')
})

t.test('a bad environment variable stops start-up with a message naming it', async (t) => {
  t.throws(() => loadConfig({ PORT: 'eighty' }), /PORT/)
  t.throws(() => loadConfig({ UPLOAD_RETENTION: 'forever' }), /UPLOAD_RETENTION/)
  t.throws(() => loadConfig({ MAX_FILE_BYTES: '-1' }), /MAX_FILE_BYTES/)
  // a fraction for a whole-number variable is refused, not truncated (1.5 s of idle timeout was 1 s)
  for (const [name, value] of [['DICOM_IDLE_TIMEOUT_S', '1.5'], ['MAX_INFLIGHT_BYTES', '5e8'], ['PORT', '3000.0']]) {
    t.throws(() => loadConfig({ [name]: value }), new RegExp(`^Invalid environment variable ${name}="${value}": give a whole number (from|of at least) `), `${name}=${value}`)
  }
  t.equal(loadConfig({ DICOM_IDLE_TIMEOUT_S: ' 2 ' }).dicomNode.idleTimeoutMs, 2000, 'whole numbers as before, spaces around them too')
  // A duration beyond what a Node timer can wait ran after 1 ms: HANDLER_TIMEOUT_MS=2147483648 answered every request 408.
  for (const [name, value] of [['HANDLER_TIMEOUT_MS', '2147483648'], ['DECODE_TIMEOUT_MS', '9999999999'], ['DICOM_IDLE_TIMEOUT_S', '2147484']]) {
    t.throws(() => loadConfig({ [name]: value }), new RegExp(`^Invalid environment variable ${name}="?${value}"?: give a whole number from 1 to 2147483`), `${name}=${value}`)
  }
  t.equal(loadConfig({ HANDLER_TIMEOUT_MS: '2147483647' }).handlerTimeoutMs, 2_147_483_647, 'the longest a timer waits is accepted')
  // The FHIR push reads 7 days back: SERIES_IDLE_SECONDS=604800 (or more) started, and no study was ever final to it.
  t.throws(() => loadConfig({ SERIES_IDLE_SECONDS: '604800' }), /^Invalid environment variable SERIES_IDLE_SECONDS="?604800"?: give a whole number from 1 to 86400$/)
  t.equal(loadConfig({ SERIES_IDLE_SECONDS: '86400' }).series.idleSeconds, 86_400, 'a day is accepted')
  // A row may commit twice DATABASE_TIMEOUT_MS after its time, and the push sweep's window must reach it (records/store.ts).
  t.throws(() => loadConfig({ DATABASE_TIMEOUT_MS: '86400001' }), /^Invalid environment variable DATABASE_TIMEOUT_MS="?86400001"?: give a whole number from 100 to 86400000$/)
  t.equal(loadConfig({ DATABASE_TIMEOUT_MS: '86400000' }).records.timeoutMs, 86_400_000, 'a day is accepted')
  t.equal(loadConfig({ UPLOAD_RETENTION: 'none' }).uploadMaxAgeMs, 0)
  t.equal(loadConfig({ UPLOAD_RETENTION: '2h' }).uploadMaxAgeMs, 7_200_000)
  t.equal(loadConfig({}).port, 3000)
})
