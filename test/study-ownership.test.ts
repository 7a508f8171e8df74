import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import type { RecordsConfig } from '../plugins/app/records-config.js'
import { ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { ctSliceFromImage } from './helpers/dicom-writer.js'
import { recordsApp } from './records/suite.js'
import { MAX_STUDY_ROWS } from '../records/study-rows.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// Who reads which study with authentication on (GET /studies/{uid}): a caller its own instances; records:read-all
// readers, and the FHIR push, the study of the caller that first had one of its instances classified.

const run = promisify(execFile)
const work = await mkdtemp(join(tmpdir(), 'kidney-study-owner-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
// A slice every model here calls Stone: a ct-kidney stone slice made DICOM (test/studies.test.ts says why).
const STONE_SLICE = join(work, 'stone.dcm')
await writeFile(STONE_SLICE, await ctSliceFromImage(await ctKidneyImage('test/stone', 0)))
const records = async (): Promise<RecordsConfig> => ({ ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-'))) })

t.test('with authentication, a study is read as records are: a caller sees its own instances; records:read-all sees all; STOW needs predict', async (t) => {
  const keys = { alice: 'alice-0123456789abcdef', bob: 'bob-0123456789abcdefgh', auditor: 'auditor-0123456789abcdef' }
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: `alice:${keys.alice}:predict,bob:${keys.bob}:predict,auditor:${keys.auditor}:records:read-all` }).auth
  const app = await recordsApp(t, await records(), { auth, rateLimit: { max: 0, windowMs: 1000 } })
  const series = await writeCtSeries(join(work, 'auth'), { slices: 1 })
  const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': keys.alice } })).statusCode, 200)
  const as = async (key: string): Promise<[number, string]> => {
    const res = await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}`, headers: { 'x-api-key': key } })
    return [res.statusCode, res.json().code ?? `${res.json().series[0].instances.classified as number} classified`]
  }
  t.same(await as(keys.alice), [200, '1 classified'], 'its own')
  t.same(await as(keys.bob), [404, 'STUDY_NOT_FOUND'], 'someone else\'s study does not exist for this caller')
  t.same(await as(keys.auditor), [200, '1 classified'], 'records:read-all')
  // A new user reading with a predict key the study a PACS had pushed to the DICOM node got only "No instance of
  // study … is recorded for this caller (none was received, …)", and took it that nothing had arrived.
  const notHers = await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}`, headers: { 'x-api-key': keys.bob } })
  t.match(notHers.json().message, /These credentials read only the instances they sent: instances pushed to the DICOM node, or sent with other credentials, need the records:read-all scope\.$/,
    'a caller without records:read-all is told that another caller\'s instances may be there')
  const unknown = await app.inject({ method: 'GET', url: '/studies/1.2.3.4', headers: { 'x-api-key': keys.auditor } })
  t.equal(unknown.json().message, 'No instance of study 1.2.3.4 is recorded for this caller (none was received, or they are past their retention).',
    'a records:read-all reader is not sent looking for a scope it has')
  t.equal((await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).statusCode, 401)
  const stow = await app.inject({ method: 'POST', url: '/studies', headers: { 'x-api-key': keys.auditor, 'content-type': 'multipart/related; type="application/dicom"; boundary=x' }, payload: '--x--' })
  t.equal(stow.statusCode, 403, 'STOW-RS needs the predict scope')
})

/** An app with API keys: the PACS and alice may predict, the auditor reads every caller's records. */
async function callersApp (t: Test): Promise<{ app: FastifyInstance, keys: Record<'pacs' | 'alice' | 'auditor', string> }> {
  const keys = { pacs: 'pacs-0123456789abcdefgh', alice: 'alice-0123456789abcdef', auditor: 'auditor-0123456789abcdef' }
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: `pacs:${keys.pacs}:predict,alice:${keys.alice}:predict,auditor:${keys.auditor}:records:read-all` }).auth
  return { app: await recordsApp(t, await records(), { auth, rateLimit: { max: 0, windowMs: 1000 } }), keys }
}

t.test('with authentication, another caller\'s copy of an instance does not replace its sender\'s result in the study everyone reads', async (t) => {
  const { app, keys } = await callersApp(t)
  // Two slices from CT1 (a chest slice, Normal), then a ct-kidney stone slice made DICOM (Stone) under the same UIDs,
  // and a third copy of it next to them, which the sender had sent too but was refused.
  const sent = await writeCtSeries(join(work, 'copy-sent'), { slices: 2 })
  const copies = await writeCtSeries(join(work, 'copy-other'), { slices: 3, studyInstanceUid: sent.studyInstanceUid, source: () => STONE_SLICE })
  for (const [i, file] of copies.files.entries()) {
    await run('dcmodify', ['-nb', '-i', `SeriesInstanceUID=${sent.seriesInstanceUid}`, ...(i < 2 ? ['-i', `SOPInstanceUID=${sent.sopInstanceUids[i]}`] : []), file])
  }
  const predict = async (file: string, key: string): Promise<void> => {
    const upload = fileUpload(await readFile(file), 'slice.dcm')
    t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': key } })).statusCode, 200)
  }
  for (const file of sent.files) await predict(file, keys.pacs)
  app.records.failedInstance({ caller: 'api-key:pacs', route: '/predict', createdAt: new Date(), studyInstanceUid: sent.studyInstanceUid, seriesInstanceUid: sent.seriesInstanceUid, sopInstanceUid: copies.sopInstanceUids[2], status: 503, code: 'OVERLOADED' })
  const study = async (key: string): Promise<{ verdict: string, instances: Record<string, number>, probabilities: number[] }> => {
    const body = (await app.inject({ method: 'GET', url: `/studies/${sent.studyInstanceUid}`, headers: { 'x-api-key': key } })).json()
    return { verdict: body.verdict, instances: body.series[0].instances, probabilities: body.series[0].slices.map((s: any) => s.probability) }
  }
  for (let attempt = 0; attempt < 100 && (await study(keys.pacs)).instances.failed === 0; attempt++) { // written in the background
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  for (const file of copies.files) await predict(file, keys.alice)
  const pacs = await study(keys.pacs)
  const alice = await study(keys.alice)
  t.match(pacs, { verdict: 'Normal', instances: { received: 3, classified: 2, failed: 1 } })
  t.match(alice, { verdict: 'Stone', instances: { received: 3, classified: 3, failed: 0 } }, 'alice\'s own view: her copies')
  // Until 2026-12-05 'Stone' with alice's probabilities throughout: the newest result per SOP instance, whoever sent
  // it, in the view of every records:read-all reader and in the report the FHIR push sends. Then, while only
  // instances had owners, alice's copy of the instance refused to the PACS counted there too.
  t.same(await study(keys.auditor), pacs, 'everyone\'s view: the study\'s first classifying sender\'s rows alone')
})

t.test('with authentication, another caller\'s series in a study, however many rows, does not count in the study everyone reads', async (t) => {
  const { app, keys } = await callersApp(t)
  // The PACS's series: two CT1 slices (Normal). Alice's: a series of her own (new Series and SOP Instance UIDs) of
  // three ct-kidney stone slices (Stone) under the PACS's StudyInstanceUID, one of them refused first.
  const sent = await writeCtSeries(join(work, 'series-sent'), { slices: 2 })
  const other = await writeCtSeries(join(work, 'series-other'), { slices: 3, studyInstanceUid: sent.studyInstanceUid, source: () => STONE_SLICE })
  const study = async (key: string): Promise<{ verdict: string, series: string[] }> => {
    const body = (await app.inject({ method: 'GET', url: `/studies/${sent.studyInstanceUid}`, headers: { 'x-api-key': key } })).json()
    return { verdict: body.verdict, series: body.series?.map((s: any) => `${s.seriesInstanceUid as string} ${s.conclusion as string}`) }
  }
  app.records.failedInstance({ caller: 'api-key:alice', route: '/predict', createdAt: new Date(), studyInstanceUid: sent.studyInstanceUid, seriesInstanceUid: other.seriesInstanceUid, sopInstanceUid: other.sopInstanceUids[0], status: 503, code: 'OVERLOADED' })
  for (let attempt = 0; attempt < 100 && (await study(keys.auditor)).series === undefined; attempt++) { // written in the background
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.same(await study(keys.auditor), { verdict: 'Undetermined', series: [`${other.seriesInstanceUid} Undetermined`] }, 'nothing classified yet: every caller\'s refusals')
  const ids: string[] = []
  for (const [files, key] of [[sent.files, keys.pacs], [other.files, keys.alice]] as const) {
    for (const file of files) {
      const upload = fileUpload(await readFile(file), 'slice.dcm')
      ids.push((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': key } })).json().id)
    }
  }
  t.same(await study(keys.pacs), { verdict: 'Normal', series: [`${sent.seriesInstanceUid} Normal`] })
  t.same(await study(keys.alice), { verdict: 'Stone', series: [`${other.seriesInstanceUid} Stone`] }, 'alice\'s own view: her series')
  // On the old code 'Stone', with both series: any caller with the predict scope turned the PACS's study Stone for
  // every records:read-all reader and in the report the FHIR push sends (the same read, app.studyResult(uid)).
  t.same(await study(keys.auditor), { verdict: 'Normal', series: [`${sent.seriesInstanceUid} Normal`] }, 'everyone\'s view: the PACS\'s study')
  // MAX_STUDY_ROWS more of alice's instances: with the owner taken from the newest rows read, she would own the study.
  const template = await app.records.getPredictionRecord(ids[2])
  if (template === undefined) throw new Error('no record')
  await Promise.all(Array.from({ length: MAX_STUDY_ROWS }, async (_, i) => await app.records.savePrediction({
    ...template, id: randomUUID(), createdAt: new Date(Date.now() + i), dicom: { ...template.dicom, sopInstanceUid: `${other.seriesInstanceUid}.${i}` }
  })))
  t.same(await study(keys.auditor), { verdict: 'Normal', series: [`${sent.seriesInstanceUid} Normal`] }, 'still the PACS\'s study')
})

t.test('with authentication, ?mine=true reads the instances this caller sent, also with records:read-all (the web page\'s own uploads)', async (t) => {
  // A radiologist who may read everything sends a series of a study the PACS sent first. The study as a whole is the
  // PACS', so on the old code the page showed her series as 'not held for you' (or, under the PACS' series UID, the
  // PACS' slices in place of hers): ?mine was not read.
  const keys = { pacs: 'pacs-0123456789abcdefgh', radiologist: 'radiologist-0123456789abcdef' }
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: `pacs:${keys.pacs}:predict,radiologist:${keys.radiologist}:predict records:read-all` }).auth
  const app = await recordsApp(t, await records(), { auth, rateLimit: { max: 0, windowMs: 1000 } })
  const sent = await writeCtSeries(join(work, 'mine-pacs'), { slices: 1 })
  const hers = await writeCtSeries(join(work, 'mine-radiologist'), { slices: 1, studyInstanceUid: sent.studyInstanceUid })
  for (const [file, key] of [[sent.files[0], keys.pacs], [hers.files[0], keys.radiologist]]) {
    const upload = fileUpload(await readFile(file), 'slice.dcm')
    t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': key } })).statusCode, 200)
  }
  const series = async (query: string): Promise<string[]> => (await app.inject({ method: 'GET', url: `/studies/${sent.studyInstanceUid}${query}`, headers: { 'x-api-key': keys.radiologist } }))
    .json().series.map((s: { seriesInstanceUid: string }) => s.seriesInstanceUid)
  t.same(await series(''), [sent.seriesInstanceUid], 'records:read-all: the study as its first sender sent it')
  t.same(await series('?mine=true'), [hers.seriesInstanceUid], 'mine: her own series')
  t.same(await series('?mine=false'), [sent.seriesInstanceUid])
})
