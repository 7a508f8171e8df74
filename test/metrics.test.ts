import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import type { Classifier } from '../inference/classifier.js'
import { loadClassifier } from '../plugins/app/classifier.js'
import { CT_KIDNEY, build, fileUpload } from './helper.js'

/** The value of one sample line `name{labels} value` of a Prometheus text exposition, or undefined. */
function sample (text: string, nameAndLabels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(nameAndLabels + ' '))
  return line === undefined ? undefined : Number(line.slice(nameAndLabels.length + 1))
}

t.test('/metrics exposes request counts, batch sizes, queue waits and stage timings of real predictions', async (t) => {
  const app = await build(t, { config: { batchMaxSize: 4, batchMaxDelayUs: 20_000, sharpConcurrency: 4 } })
  const dir = join(CT_KIDNEY, 'test/stone')
  const images = await Promise.all((await readdir(dir)).sort().slice(0, 4).map(async (name) => await readFile(join(dir, name))))

  const before = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(before.statusCode, 200)
  t.match(before.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.equal(sample(before.body, 'kidney_batch_size_count'), 0, 'no batch run yet')

  const answers = await Promise.all(images.map(async (image) =>
    await app.inject({ method: 'POST', url: '/predict', ...fileUpload(image) })))
  t.same(answers.map((a) => a.statusCode), [200, 200, 200, 200])
  t.match(answers[0].headers['server-timing'], /batchWait;dur=[0-9.]+/)
  await app.inject({ method: 'POST', url: '/predict', ...fileUpload(Buffer.from('not an image')) })
  const dicom = await readFile(new URL('../../shared/data/dicom/ct1-unc-jpeg-ls.dcm', import.meta.url))
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'slice.dcm') })).statusCode, 200)

  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(text, 'kidney_http_requests_total{method="POST",route="/predict",status_code="200"}'), 5)
  t.equal(sample(text, 'kidney_http_requests_total{method="POST",route="/predict",status_code="415"}'), 1)
  t.equal(sample(text, 'kidney_http_errors_total{route="/predict",status_code="415",code="UNSUPPORTED_MEDIA_TYPE"}'), 1,
    'typed errors are counted by their code')
  t.equal(sample(text, 'kidney_batch_size_sum'), 5, 'every image was carried by exactly one batch')
  const batches = sample(text, 'kidney_batch_size_count') ?? 0
  t.ok(batches >= 2 && batches <= 5, `${batches} batches`)
  t.equal(sample(text, 'kidney_batch_duration_seconds_count'), batches)
  for (const stage of ['imageWait', 'decode', 'preprocess', 'batchWait', 'inference']) {
    t.equal(sample(text, `kidney_stage_duration_seconds_count{stage="${stage}"}`), 5, `${stage} observed once per image`)
  }
  t.ok((sample(text, 'kidney_stage_duration_seconds_sum{stage="decode"}') ?? 0) > 0, 'decoding took time')
  t.equal(sample(text, 'kidney_inference_queued'), 0, 'nothing waiting after the requests')
  t.equal(sample(text, 'kidney_dicom_decoder_files{event="decoded"}'), 1, 'the DICOM slice was decoded by a decoder thread')
  t.equal(sample(text, 'kidney_dicom_decoder_files{event="timed_out"}'), 0)
  t.equal(sample(text, 'kidney_inflight_bytes'), 0, 'every upload has given its bytes back')
  t.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 0, 'process metrics are included')
})

t.test('each app counts only its own requests', async (t) => {
  const first = await build(t)
  const second = await build(t)
  await first.inject({ method: 'GET', url: '/health/live' })
  const text = (await second.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(text, 'kidney_http_requests_total{method="GET",route="/health/live",status_code="200"}'), undefined)
  const own = (await first.inject({ method: 'GET', url: '/metrics' })).body
  t.equal(sample(own, 'kidney_http_requests_total{method="GET",route="/health/live",status_code="200"}'), 1)
})

t.test('the records failures the alerts watch are exported at 0 from the start: a first failure shows as an increase', async (t) => {
  const text = (await (await build(t)).inject({ method: 'GET', url: '/metrics' })).body
  for (const kind of ['prediction', 'audit', 'failed-instance']) {
    t.equal(sample(text, `kidney_records_write_failures_total{kind="${kind}"}`), 0)
    t.equal(sample(text, `kidney_records_lost_total{kind="${kind}"}`), 0)
  }
  t.equal(sample(text, 'kidney_records_withdrawn_total{result="failed"}'), 0)
  t.equal(sample(text, 'kidney_records_withdrawn_total{result="ok"}'), 0)
})

t.test('kidney_ready and kidney_model_state follow the readiness check: loading, ready, runtime stopped', async (t) => {
  let finishLoading!: (c: Classifier) => void
  const pending = new Promise<Classifier>((resolve) => { finishLoading = resolve })
  const app = await build(t, { loadClassifier: async () => await pending }, { waitForModel: false })
  const scrape = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const states = (text: string): Array<number | undefined> =>
    ['loading', 'ready', 'failed'].map((state) => sample(text, `kidney_model_state{state="${state}"}`))

  let text = await scrape()
  t.equal(sample(text, 'kidney_ready'), 0, 'not ready while the model loads')
  t.same(states(text), [1, 0, 0])
  finishLoading(await loadClassifier(app.config))
  await app.model.loaded
  text = await scrape()
  t.equal(sample(text, 'kidney_ready'), 1, 'ready once loaded and warmed up')
  t.same(states(text), [0, 1, 0])

  // the runtime ends as a fatal error would end it (service.test.ts does the same)
  await (app.model.get() as unknown as { session: { worker: { terminate: () => Promise<number> } } }).session.worker.terminate()
  text = await scrape()
  t.equal(sample(text, 'kidney_ready'), 0, 'not ready once the runtime stopped')
  t.same(states(text), [0, 0, 1])
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 503, 'as /health/ready says')
})
