import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { concludeSeries } from '../inference/series-conclusion.js'
import type { RecordsConfig } from '../plugins/app/records-config.js'
import { ctKidneyImage, fileUpload, multipart, RECORDS_OFF } from './helper.js'
import { CT_SOURCES, newUid, writeCtSeries } from '../bench/ct-series.js'
import { ctSliceFromImage, SYNTHETIC_UIDS, writeDicom } from './helpers/dicom-writer.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'
import { startPostgres } from './helpers/postgres.js'
import { recordsApp } from './records/suite.js'
import type { PredictionRecord } from '../records/record.js'
import { MAX_STUDY_ROWS } from '../records/study-rows.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// GET /studies/{uid} on both record stores: the embedded PGlite database and a real PostgreSQL server.

const work = await mkdtemp(join(tmpdir(), 'kidney-studies-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const server = await startPostgres()
t.teardown(async () => await server.destroy())
const validateReport = fhirR4Validator('DiagnosticReport')
// A slice every model here calls Stone: a ct-kidney stone slice made DICOM. The shared spine slice CT_small is no such
// slice: its answer moves with the model (2.4.0 Stone at 0.409, 2.5.0 Normal at 0.160).
const STONE_SLICE = join(work, 'stone.dcm')
await writeFile(STONE_SLICE, await ctSliceFromImage(await ctKidneyImage('test/stone', 0)))

const backends: Array<{ engine: string, records: () => Promise<RecordsConfig> }> = [
  { engine: 'pglite', records: async () => ({ ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-'))) }) },
  { engine: 'postgres', records: async () => ({ ...RECORDS_OFF, store: 'postgres', databaseUrl: await server.createDatabase(`studies_${Date.now()}`), poolSize: 2, timeoutMs: 5_000 }) }
]

for (const backend of backends) {
  t.test(`${backend.engine}: a series sent slice by slice in any order comes back ordered, counted and concluded`, async (t) => {
    const app = await recordsApp(t, await backend.records(), { series: { idleSeconds: 1, minAdjacentSlices: 2 } })
    const series = await writeCtSeries(join(work, `${backend.engine}-series`), {
      slices: 8, source: (i) => i % 3 === 0 ? STONE_SLICE : CT_SOURCES.ct1
    })
    const order = [5, 0, 7, 2, 1, 6, 3, 4]
    for (const i of order) {
      const upload = fileUpload(await readFile(series.files[i]), `slice-${i}.dcm`)
      const res = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })
      t.equal(res.statusCode, 200, res.body)
    }
    // A refused instance of the same series (as the DICOM node records one), and a second series with only a refusal.
    const otherSeries = newUid()
    app.records.failedInstance({ caller: 'anonymous', route: 'DIMSE C-STORE', createdAt: new Date(), studyInstanceUid: series.studyInstanceUid, seriesInstanceUid: series.seriesInstanceUid, sopInstanceUid: newUid(), status: 422, code: 'UNSUPPORTED_MODALITY' })
    app.records.failedInstance({ caller: 'anonymous', route: 'DIMSE C-STORE', createdAt: new Date(), studyInstanceUid: series.studyInstanceUid, seriesInstanceUid: otherSeries, status: 400, code: 'CORRUPT_DICOM' })

    let study: Record<string, any> = {}
    for (let attempt = 0; attempt < 100; attempt++) { // refusals are written in the background
      study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
      if (study.series?.length === 2) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.equal(study.studyInstanceUid, series.studyInstanceUid)
    const [ct, refused] = study.series
    t.equal(ct.seriesInstanceUid, series.seriesInstanceUid)
    t.same(ct.instances, { received: 9, classified: 8, failed: 1 })
    t.same(ct.slices.map((s: any) => s.sopInstanceUid), series.sopInstanceUids, 'ordered by slice position, not by arrival')
    t.same(ct.slices.map((s: any) => s.slicePosition), series.positions)
    t.same(ct.slices.map((s: any) => s.instanceNumber), [1, 2, 3, 4, 5, 6, 7, 8])
    const expected = concludeSeries(ct.slices, { threshold: ct.rule.threshold, minAdjacentSlices: 2 })
    t.equal(ct.conclusion, expected.conclusion)
    t.same(ct.positiveRanges, expected.positiveRanges)
    t.equal(ct.maxProbability, Math.max(...ct.slices.map((s: any) => s.probability)))
    t.same(ct.failures.map((f: any) => f.code), ['UNSUPPORTED_MODALITY'])
    t.same(refused.instances, { received: 1, classified: 0, failed: 1 })
    t.equal(refused.conclusion, 'Undetermined')
    t.equal(refused.rule.threshold, app.model.get().spec.threshold, 'its rule states the model\'s threshold (on the old code: 0.5, no model\'s)')
    t.equal(study.verdict, ct.conclusion, 'the verdict follows the only series with results')

    // Each slice's prediction id reads back the full answer.
    const one = await app.inject({ method: 'GET', url: `/predictions/${ct.slices[0].predictionId as string}` })
    t.equal(one.json().dicom.sopInstanceUid, series.sopInstanceUids[0])

    // Final once SERIES_IDLE_SECONDS have passed without a new instance.
    if (study.final === false) {
      t.ok(Date.parse(ct.finalAt) > Date.parse(ct.lastReceivedAt), 'not final yet: finalAt is ahead')
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(study.series[1].finalAt) - Date.now()) + 100))
      study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
    }
    t.equal(study.final, true)

    const fhir = await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}`, headers: { accept: 'application/fhir+json' } })
    t.equal(fhir.statusCode, 200)
    t.match(fhir.headers['content-type'], /^application\/fhir\+json/)
    const report = fhir.json()
    t.ok(validateReport(report), JSON.stringify(validateReport.errors))
    t.equal(report.status, 'preliminary', 'final study: preliminary (automated, awaiting review)')
    const observations = report.contained.filter((r: any) => r.resourceType === 'Observation')
    t.equal(observations.length, 2, 'one Observation per series')
    const thresholds = observations.map((o: any) => o.component.find((c: any) => c.code.text === 'Decision threshold').valueQuantity.value)
    t.same(thresholds, [ct.rule.threshold, ct.rule.threshold], 'the refused series\' Observation states the model\'s threshold too')
    t.equal(report.conclusionCode[0].coding[0].code, study.verdict === 'Stone' ? '95570007' : '281900007')
    t.match(report.conclusion, series.seriesInstanceUid)
    t.same(report.imagingStudy[0].identifier, { system: 'urn:dicom:uid', value: `urn:oid:${series.studyInstanceUid as string}` })
  })
}

for (const backend of backends) {
  t.test(`${backend.engine}: a multi-frame object's frames are slices of its series in GET /studies, counted and concluded as POST /predict/batch does`, async (t) => {
    const app = await recordsApp(t, await backend.records())
    // Three frames (8-bit display pixels of a ct-kidney stone slice, a black frame, the stone slice again): two
    // positive slices with a negative one between them, so no two adjacent. pydicom's multi-frame files (RGB, 32-bit
    // RT Dose) are refused before classification, so the frames are made here.
    const stone = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
    const { width, height } = stone.info
    const object = writeDicom({
      sopClassUid: '1.2.840.10008.5.1.4.1.1.7.2', modality: 'OT', rows: height, columns: width, frames: 3, bitsAllocated: 8, signed: false,
      values: [...stone.data, ...new Array(width * height).fill(0), ...stone.data]
    })
    const batch = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([{ name: 'files', filename: 'frames.dcm', contentType: 'application/dicom', data: object }]) })
    t.equal(batch.statusCode, 200, batch.body.slice(0, 300))
    const { results: [{ result }], summary: { series: [batched] } } = batch.json()
    t.same(result.frames.map((f: any) => f.prediction), ['Stone', 'Normal', 'Stone'])
    t.match(batched, { slices: 3, conclusion: 'Normal' })
    let study: Record<string, any> = {}
    for (let attempt = 0; attempt < 100 && study.series === undefined; attempt++) { // records are written in the background
      study = (await app.inject({ method: 'GET', url: `/studies/${SYNTHETIC_UIDS.studyInstanceUid}` })).json()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const [series] = study.series
    t.same(series.instances, { received: 1, classified: 1, failed: 0 }, 'one instance')
    // On the old code: one slice (the object's answer, Stone) and the series Stone.
    t.same(series.slices.map((s: any) => [s.frame, s.prediction, s.predictionId]), result.frames.map((f: any) => [f.frame, f.prediction, result.id]), 'its three frames')
    t.equal(series.conclusion, batched.conclusion)
    t.equal(series.isolatedPositiveSlices, 2)
    t.same(series.slices.filter((s: any) => s.prediction === 'Stone').map((s: any) => s.frame), batched.stoneSlices.map((s: any) => s.frame).sort())
  })
}

t.test('the FHIR form of a study still receiving instances is partial, and of a study with nothing classified has no conclusionCode', async (t) => {
  const app = await recordsApp(t, await backends[0].records(), { series: { idleSeconds: 3600, minAdjacentSlices: 2 } })
  const series = await writeCtSeries(join(work, 'fhir-partial'), { slices: 1 })
  const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  const fhir = async (uid: string): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'GET', url: `/studies/${uid}`, headers: { accept: 'application/fhir+json' } })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const open = await fhir(series.studyInstanceUid)
  t.equal(open.statusCode, 200)
  t.ok(validateReport(open.body), JSON.stringify(validateReport.errors))
  // On the old code 'preliminary': the response schema (the one prediction's) wrote its literal over the report's value.
  t.equal(open.body.status, 'partial', 'final only an hour after its last instance')
  t.match(open.body.conclusion, /Instances may still arrive: this report is partial\./)

  // Only a refused instance (as the DICOM node records an MR slice): Undetermined. On the old code a 500
  // ('"conclusionCode" is required!' from the serializer).
  const refusedStudy = newUid()
  app.records.failedInstance({ caller: 'anonymous', route: 'DIMSE C-STORE', createdAt: new Date(), studyInstanceUid: refusedStudy, seriesInstanceUid: newUid(), sopInstanceUid: newUid(), status: 422, code: 'UNSUPPORTED_SOP_CLASS' })
  let refused = await fhir(refusedStudy)
  for (let attempt = 0; attempt < 100 && refused.statusCode === 404; attempt++) { // written in the background
    await new Promise((resolve) => setTimeout(resolve, 50))
    refused = await fhir(refusedStudy)
  }
  t.equal(refused.statusCode, 200, JSON.stringify(refused.body))
  t.ok(validateReport(refused.body), JSON.stringify(validateReport.errors))
  t.notOk('conclusionCode' in refused.body)
  t.match(refused.body.conclusion, /^No CT instance of this study could be classified\./)
})

t.test('postgres: two replicas on one database give the same study result, and it survives a restart', async (t) => {
  const records = await backends[1].records()
  const [a, b] = await Promise.all([recordsApp(t, records), recordsApp(t, records)])
  const series = await writeCtSeries(join(work, 'replicas'), { slices: 4 })
  for (const [i, file] of series.files.entries()) {
    const upload = fileUpload(await readFile(file), 'slice.dcm')
    const res = await (i % 2 === 0 ? a : b).inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })
    t.equal(res.statusCode, 200)
  }
  const read = async (app: typeof a): Promise<any> => {
    const study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
    return { ...study, final: undefined, series: study.series.map((s: any) => ({ ...s, final: undefined })) }
  }
  const throughA = await read(a)
  t.same(throughA.series[0].instances, { received: 4, classified: 4, failed: 0 })
  t.same(await read(b), throughA, 'the same answer through either replica')
  await a.close()
  const restarted = await recordsApp(t, records)
  t.same(await read(restarted), throughA, 'the same answer after a restart')
})

/** A service on its own embedded database with one DICOM slice classified: its answer and its record, to copy. */
async function oneRecordedSlice (t: Test, name: string): Promise<{ app: FastifyInstance, series: { studyInstanceUid: string }, current: any, template: PredictionRecord }> {
  const app = await recordsApp(t, await backends[0].records())
  const series = await writeCtSeries(join(work, name), { slices: 1 })
  const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
  const current = (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).json()
  const template = await app.records.getPredictionRecord(current.id)
  if (template === undefined) throw new Error('no record')
  return { app, series, current, template }
}

t.test('a study sent again and again is read with its newest results, not with the first MAX_STUDY_ROWS rows received', async (t) => {
  const { app, series, current, template } = await oneRecordedSlice(t, 'resent')
  // MAX_STUDY_ROWS earlier results of the same instance (a day older, one a millisecond), positive unlike the current one.
  const since = Date.now() - 86_400_000
  await Promise.all(Array.from({ length: MAX_STUDY_ROWS }, async (_, i) => await app.records.savePrediction({
    ...template, id: randomUUID(), createdAt: new Date(since + i), prediction: 'Stone', probabilities: { Normal: 0.1, Stone: 0.9 }
  })))
  const study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
  t.same(study.series[0].instances, { received: 1, classified: 1, failed: 0 })
  // On the old code 0.9: the oldest MAX_STUDY_ROWS rows were read, and the current result was the one left out.
  t.equal(study.series[0].slices[0].probability, current.probabilities.Stone)
  t.equal(study.series[0].slices[0].predictionId, current.id)
})

t.test('a study of many multi-frame objects is read up to MAX_STUDY_ROWS slices, newest objects first', async (t) => {
  const { app, series, current: first, template } = await oneRecordedSlice(t, 'multi-frame-flood')
  // Objects of 300 frames (DICOM_MAX_FRAMES' default), one a millisecond after the other, enough to pass the bound.
  const framesEach = 300
  const objects = Math.ceil(MAX_STUDY_ROWS / framesEach) + 3
  const since = Date.now() - 86_400_000
  const frames = Array.from({ length: framesEach }, (_, i) => ({ frame: i + 1, slicePosition: i, prediction: 'Normal', probabilities: { Normal: 0.99, Stone: 0.01 } }))
  const ids = Array.from({ length: objects }, () => randomUUID())
  await Promise.all(ids.map(async (id, i) => await app.records.savePrediction({
    ...template, id, createdAt: new Date(since + i), dicom: { ...template.dicom, sopInstanceUid: `${series.studyInstanceUid}.9.${i}` },
    answer: { ...template.answer, id, frames }
  })))
  const study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
  // the newest slice is the single-frame upload's: then as many whole objects as fit
  const kept = Math.floor((MAX_STUDY_ROWS - 1) / framesEach)
  // On the old code every object was read: objects x 300 + 1 slices.
  t.equal(study.series[0].slices.length, kept * framesEach + 1, 'whole objects, up to MAX_STUDY_ROWS slices')
  t.same(new Set(study.series[0].slices.map((slice: { predictionId: string }) => slice.predictionId)), new Set([first.id, ...ids.slice(-kept)]),
    'the newest objects')
})

t.test('an unknown study is 404 STUDY_NOT_FOUND; a malformed UID is 400', async (t) => {
  const app = await recordsApp(t, await backends[0].records())
  const missing = await app.inject({ method: 'GET', url: `/studies/${newUid()}` })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'STUDY_NOT_FOUND')
  const bad = await app.inject({ method: 'GET', url: '/studies/not-a-uid' })
  t.equal(bad.statusCode, 400)
})
