import { once } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { unlessAnswered } from '../plugins/app/deadline.js'
import { RequestTimeoutError } from '../plugins/app/errors.js'
import { ctKidneyFiles, RECORDS_OFF } from './helper.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { readInstanceKeys } from '../dicom-node/instance-keys.js'
import { recordsApp } from './records/suite.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { until } from './helpers/fhir-stub.js'

const MR_IMAGE = '1.2.840.10008.5.1.4.1.1.4'

// A request answered 408 at HANDLER_TIMEOUT_MS gives its caller no id: none of its answers may stay recorded or kept.
// `answered` is what the routes pass (reply.sent); here it turns true after a chosen number of looks, so the deadline
// falls exactly where each case needs it, without timing.

const work = await mkdtemp(join(tmpdir(), 'kidney-deadline-withdraw-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data')) })
const origin = { caller: 'anonymous', route: '/predict/batch' }

/** An `answered` that says false for the first `looks` calls, then true: the deadline passed after them. */
function deadlineAfter (looks: number): () => boolean {
  let seen = 0
  return () => ++seen > looks
}

const metricsText = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body
/** A series' value; 0 while it has no sample (a labelled counter shows a label set only once it counted one). */
const metricSample = (text: string, series: string): number =>
  Number(text.split('\n').find((line) => line.startsWith(`${series} `))?.slice(series.length + 1) ?? 0)
/** Records withdrawn so far. */
const withdrawn = async (): Promise<number> => metricSample(await metricsText(), 'kidney_records_withdrawn_total{result="ok"}')
/** Prediction records written so far. */
const written = async (): Promise<number> => metricSample(await metricsText(), 'kidney_records_written_total{kind="prediction"}')

const kept = async (): Promise<{ records: number, uploads: number }> => {
  const page = (await app.inject({ method: 'GET', url: '/predictions?limit=200' })).json()
  return { records: page.items.length, uploads: (await readdir(app.config.uploadDir)).length }
}

t.test('POST /predict/batch answered 408 after some files were recorded: their records and uploads are withdrawn', async (t) => {
  const files = await Promise.all((await ctKidneyFiles('test/stone', 4)).map(async (file) => await readFile(file)))
  // Each file looks before and after its classification and once written; the four run side by side, so the 10th look
  // falls after at least two files were written (their looks before and after classification come by the 6th), and how
  // many more were written first depends on how the model batched them. Every file written is withdrawn, whether its
  // own look or the batch's saw the deadline. On the old code the batch resolved and the answers nobody was given
  // stayed: 2 records, 2 uploads.
  const [withdrawnBefore, writtenBefore] = [await withdrawn(), await written()]
  await t.rejects(app.predictBatch(files, origin, { answered: deadlineAfter(10) }), RequestTimeoutError)
  t.same(await kept(), { records: 0, uploads: 0 }, 'nothing kept of a batch answered 408')
  const recorded = await written() - writtenBefore
  t.ok(recorded >= 2, `at least the two files written before the deadline were recorded (${recorded})`)
  t.equal(await withdrawn() - withdrawnBefore, recorded, 'and every record written was withdrawn')
  const answered = await app.predictBatch(files, origin, { answered: () => false })
  t.equal(answered.summary.succeeded, 4)
  t.same(await kept(), { records: 4, uploads: 4 }, 'a batch answered in time keeps every answer')
})

t.test('POST /predict answered 408 while its upload and record were written: both withdrawn', async (t) => {
  const before = await kept()
  const [file] = await ctKidneyFiles('test/normal', 1)
  // The first two looks (before and after classification) see the deadline not passed; the third (once written) sees it passed.
  const withdrawnBefore = await withdrawn()
  await t.rejects(app.predict(await readFile(file), origin, { answered: deadlineAfter(2) }), RequestTimeoutError)
  t.same(await kept(), before, 'old code: one more record and upload')
  t.equal(await withdrawn() - withdrawnBefore, 1, 'its record was written, then withdrawn')
})

t.test('a file of a request answered already is not classified at all', async (t) => {
  const before = await kept()
  const [file] = await ctKidneyFiles('test/normal', 1)
  const classified = async (): Promise<number> => metricSample(await metricsText(), 'kidney_stage_duration_seconds_count{stage="inference"}')
  const [withdrawnBefore, classifiedBefore] = [await withdrawn(), await classified()]
  await t.rejects(app.predict(await readFile(file), origin, { answered: () => true }), RequestTimeoutError)
  t.equal(await classified(), classifiedBefore, 'not classified (old code: one more image through the model)')
  t.same(await kept(), before)
  t.equal(await withdrawn() - withdrawnBefore, 0, 'nothing was written to withdraw')
})

t.test('STOW-RS answered 408: an instance that meets the deadline is not recorded as refused in its study', async (t) => {
  const series = await writeCtSeries(join(work, 'stow'), { slices: 2 })
  const [late, other] = await Promise.all(series.files.map(async (file) => await readFile(file)))
  const stow = { ...origin, route: '/studies' }
  t.equal((await app.receiveInstance(late, stow, readInstanceKeys(late), { answered: () => true })).classified, false)
  // A refusal that is recorded, written after it in the background: once it shows, the first would show too.
  t.equal((await app.receiveInstance(other, stow, { ...readInstanceKeys(other), sopClassUid: MR_IMAGE })).classified, false)
  const failures = async (): Promise<string[]> => {
    const study = await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })
    return study.statusCode === 200 ? study.json().series.flatMap((s: any) => s.failures.map((f: any) => f.code)) : []
  }
  await until(async () => (await failures()).includes('UNSUPPORTED_SOP_CLASS'), 'the recorded refusal')
  t.same(await failures(), ['UNSUPPORTED_SOP_CLASS'], 'old code: REQUEST_TIMEOUT as well, a refusal its sender never heard of')
})

t.test('POST /predict whose client hung up after sending the whole slice: nothing kept, nothing classified', async (t) => {
  // A script whose own timeout is shorter than the answer's wait (or a page closed) sends the slice and leaves: nobody
  // learns the id, and each retry used to add another record and upload. Here the route's work waits, as under load,
  // until the connection has closed on the service's side, so the hang-up falls before classification without timing.
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  const serverSide = once(app.server, 'connection') as Promise<[Socket]>
  const predict = app.predict
  let work: Promise<unknown> | undefined
  app.predict = async (...args) => {
    const [socket] = await serverSide
    if (!socket.destroyed) await once(socket, 'close')
    work = predict(...args)
    return await (work as ReturnType<typeof predict>)
  }
  t.teardown(() => { app.predict = predict })
  const classified = async (): Promise<number> => metricSample(await metricsText(), 'kidney_stage_duration_seconds_count{stage="inference"}')
  const [before, classifiedBefore] = [await kept(), await classified()]
  const [file] = await ctKidneyFiles('test/stone', 1)
  const slice = await readFile(file)
  const boundary = 'hangup-boundary'
  const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n` +
    'Content-Type: image/jpeg\r\n\r\n'), slice, Buffer.from(`\r\n--${boundary}--\r\n`)])
  const client = connect(Number(new URL(address).port), '127.0.0.1')
  await once(client, 'connect')
  client.end(Buffer.concat([Buffer.from(`POST /predict HTTP/1.1\r\nHost: service\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
    `Content-Length: ${body.length}\r\n\r\n`), body]), () => client.destroy())
  await until(async () => work !== undefined, 'the route\'s work after the hang-up')
  await t.rejects(work as Promise<unknown>, RequestTimeoutError, 'old code: resolved with an answer nobody received')
  t.same(await kept(), before, 'old code: one more record and upload')
  t.equal(await classified(), classifiedBefore, 'old code: classified')
})

t.test('a route whose request the deadline answered ends quietly: its work\'s RequestTimeoutError is not rethrown', async (t) => {
  // Rethrown, Fastify logged it at error level with a stack ("Promise errored, but reply.sent = true was set"), once
  // for each request the deadline answered (attack7). /predict, /predict/batch and STOW-RS run their work through it.
  const timeout = async (): Promise<never> => { throw new RequestTimeoutError('answered meanwhile') }
  const sent = { sent: true } as unknown as Parameters<typeof unlessAnswered>[0]
  const open = { sent: false } as unknown as Parameters<typeof unlessAnswered>[0]
  t.equal(await unlessAnswered(sent, timeout), sent, 'answered already: the reply sent is the handler\'s result')
  await t.rejects(unlessAnswered(open, timeout), RequestTimeoutError, 'not answered yet: the error goes to the error handler')
  await t.rejects(unlessAnswered(sent, async () => { throw new Error('other') }), /other/, 'any other error still surfaces')
  t.equal(await unlessAnswered(open, async () => 42), 42)
})
