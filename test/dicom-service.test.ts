import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Response as LightMyRequestResponse } from 'light-my-request'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { CT_SOURCES, writeCtSeries } from '../bench/ct-series.js'
import { createKidneyStoneClient, multipartBody } from '../client/index.js'
import { answerType } from '../plugins/app/accept.js'
import { loadConfig } from '../plugins/app/config.js'
import { build, ctKidneyImage, fileUpload, multipart, RECORDS_OFF, SHARED } from './helper.js'
import { modified, scratchDir } from './helpers/dcmtk.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'
import { ctSliceFromImage, SYNTHETIC_UIDS, writeDicom } from './helpers/dicom-writer.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
const dicomPart = (bytes: Buffer, i = 0): { name: string, filename: string, contentType: string, data: Buffer } =>
  ({ name: 'files', filename: `IM${i}.dcm`, contentType: 'application/dicom', data: bytes })

t.test('POST /predict/batch with exactly one file is a batch of one (inject and the generated client over HTTP)', async (t) => {
  const app = await build(t)
  const one = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([dicomPart(CT1)]) })
  t.equal(one.statusCode, 200, one.body)
  t.same(one.json().summary.files, 1)
  t.equal(one.json().results[0].result.dicom.sopInstanceUid, '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457')

  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = createKidneyStoneClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  const { data, response } = await client.POST('/predict/batch', multipartBody('files', [{ name: 'IM0.dcm', bytes: CT1 }]))
  t.equal(response.status, 200)
  t.same([data?.summary.files, data?.summary.succeeded, data?.summary.series.length], [1, 1, 1])
})

/** A service recording to its own embedded database, a scratch folder, and a ct-kidney stone slice made DICOM in it. */
async function recordingApp (t: Test): Promise<{ app: FastifyInstance, dir: string, stoneSlice: string }> {
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-batch-')))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, { config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir, api: true } } })
  const dir = await scratchDir(t)
  const stoneSlice = join(dir, 'stone.dcm')
  await writeFile(stoneSlice, await ctSliceFromImage(await ctKidneyImage('test/stone', 0)))
  return { app, dir, stoneSlice }
}

t.test('the batch summary concludes a series as GET /studies does (k adjacent positive slices) and counts a multi-frame object\'s frames', async (t) => {
  const { app, dir, stoneSlice } = await recordingApp(t)
  // Five slices of CT1 (a chest slice, Normal) with a ct-kidney stone slice made DICOM at slice 3, or at slices 2 and 3.
  const isolated = await writeCtSeries(join(dir, 'isolated'), { slices: 5, source: (i) => i === 2 ? stoneSlice : CT_SOURCES.ct1 })
  const adjacent = await writeCtSeries(join(dir, 'adjacent'), { slices: 5, source: (i) => i === 1 || i === 2 ? stoneSlice : CT_SOURCES.ct1 })
  // A multi-frame object of three frames: a stone slice's pixels as an 8-bit secondary capture.
  const stone = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
  const multiFrame = writeDicom({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7.2', modality: 'OT', rows: stone.info.height, columns: stone.info.width, frames: 3, bitsAllocated: 8, signed: false,
    values: [...stone.data, ...stone.data, ...stone.data]
  })
  const files = await Promise.all([...isolated.files, ...adjacent.files].map(async (file) => await readFile(file)))
  const res = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([...files, multiFrame].map((bytes, i) => dicomPart(bytes, i))) })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const { results, summary } = res.json()
  t.same(results.slice(0, 10).map((r: any) => r.result.prediction), ['Normal', 'Normal', 'Stone', 'Normal', 'Normal', 'Normal', 'Stone', 'Stone', 'Normal', 'Normal'])
  const of = (uid: string): any => summary.series.find((s: any) => s.seriesInstanceUid === uid)
  // On the old code: Stone (one Stone file made the series Stone) and slices 1 for the three frames.
  t.match(of(isolated.seriesInstanceUid), { slices: 5, conclusion: 'Normal' }, 'one positive slice among normal neighbours: Normal, rule k=2')
  t.same(of(isolated.seriesInstanceUid).stoneSlices.map((s: any) => s.index), [2], 'the lone positive slice is still listed')
  t.match(of(adjacent.seriesInstanceUid), { slices: 5, conclusion: 'Stone' }, 'two adjacent positive slices: Stone')
  t.equal(results[10].result.frames.length, 3)
  t.match(of(SYNTHETIC_UIDS.seriesInstanceUid), { slices: 3, conclusion: results[10].result.prediction }, 'three frames, three slices')
  t.same(of(SYNTHETIC_UIDS.seriesInstanceUid).stoneSlices.map((s: any) => [s.index, s.frame]).sort(),
    results[10].result.frames.filter((f: any) => f.prediction === 'Stone').map((f: any) => [10, f.frame]).sort(), 'each positive frame, by file and frame')
  for (const series of [isolated, adjacent]) {
    const study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
    t.equal(of(series.seriesInstanceUid).conclusion, study.series[0].conclusion, 'the conclusion GET /studies gives the same slices')
  }
})

t.test('a SOP instance sent twice in one batch is classified once: the same bytes share the first file\'s answer, other bytes are 409 DUPLICATE_SOP_INSTANCE; GET /studies agrees', async (t) => {
  const { app, dir, stoneSlice } = await recordingApp(t)
  // Five slices, the stone slice at slice 3 among normal ones: Normal under k=2. Counted twice, the stone slice would
  // be a second positive slice at the same position, adjacent to the first: Stone.
  const series = await writeCtSeries(join(dir, 'series'), { slices: 5, source: (i) => i === 2 ? stoneSlice : CT_SOURCES.ct1 })
  const files = await Promise.all([...series.files, series.files[2]].map(async (file) => await readFile(file)))
  const batch = async (parts: Buffer[]): Promise<any> =>
    (await app.inject({ method: 'POST', url: '/predict/batch', ...multipart(parts.map((bytes, i) => dicomPart(bytes, i))) })).json()
  const same = await batch(files)
  t.same(same.results.map((r: any) => r.index), [0, 1, 2, 3, 4, 5], 'each file its own item')
  t.equal(same.results[5].result.id, same.results[2].result.id, 'the same bytes again: the first file\'s answer and record')
  t.same([same.summary.files, same.summary.succeeded], [6, 6])
  t.match(same.summary.series, [{ slices: 5, conclusion: 'Normal' }], 'five slices: the repeated instance counts once')
  // Named by the first file, as with other bytes below (file 5, the repeat, before: the later file replaced the first)
  t.same(same.summary.series[0].stoneSlices.map((s: any) => [s.index, s.sopInstanceUid]), [[2, series.sopInstanceUids[2]]])
  // Another file under the stone slice's SOP Instance UID (CT1's chest slice, Normal) after it. On the old code both
  // were classified and recorded: the summary took the later (Normal), GET /studies the one whose record committed
  // last, either (a probe of six such batches: two disagreed).
  const other = await writeCtSeries(join(dir, 'other'), { slices: 1, attributes: { StudyInstanceUID: series.studyInstanceUid, SeriesInstanceUID: series.seriesInstanceUid, SOPInstanceUID: series.sopInstanceUids[2] } })
  const changed = await batch([...files.slice(0, 5), await readFile(other.files[0])])
  t.match(changed.results[5], { index: 5, error: { code: 'DUPLICATE_SOP_INSTANCE', statusCode: 409, message: /is also an earlier part of this request/ } })
  t.match(changed.summary, { succeeded: 5, failed: 1, series: [{ slices: 5, conclusion: 'Normal' }] })
  t.same(changed.summary.series[0].stoneSlices.map((s: any) => [s.index, s.sopInstanceUid]), [[2, series.sopInstanceUids[2]]], 'the first file\'s answer')
  const ofStone = async (): Promise<any> => (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
    .series[0].slices.find((s: any) => s.sopInstanceUid === series.sopInstanceUids[2])
  let slice = await ofStone()
  for (let attempt = 0; attempt < 100 && slice.predictionId !== changed.results[2].result.id; attempt++) { // records are written in the background
    await new Promise((resolve) => setTimeout(resolve, 50))
    slice = await ofStone()
  }
  t.match(slice, { predictionId: changed.results[2].result.id, prediction: 'Stone' }, 'the study keeps the first file\'s answer too')
})

t.test('the batch limit is stated in TOO_MANY_FILES and in GET /model limits', async (t) => {
  const app = await build(t, { config: { batchMaxFiles: 3 } })
  const tooMany = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([0, 1, 2, 3].map((i) => dicomPart(CT1, i))) })
  t.match(tooMany.json(), { statusCode: 400, code: 'TOO_MANY_FILES', message: /at most 3 files \(BATCH_MAX_FILES/ })
  const two = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ ...dicomPart(CT1), name: 'file' }, { ...dicomPart(CT1), name: 'file' }]) })
  t.match(two.json(), { code: 'TOO_MANY_FILES', message: /at most 1 file.*POST \/predict\/batch \(at most 3 per request\)/ })
  // MAX_FILES, which set /predict's file limit, is gone: any value but 1 made the second file a 400 VALIDATION_ERROR
  // 'The request body at /file does not match the API schema' (its schema takes one file), and let it be read.
  const uploadDir = await mkdtemp(join(tmpdir(), 'kidney-max-files-'))
  t.teardown(async () => await rm(uploadDir, { recursive: true, force: true }))
  const formerlyConfigured = await build(t, { config: { ...loadConfig({ MAX_FILES: '3' }), uploadDir, records: RECORDS_OFF } })
  const second = await formerlyConfigured.inject({ method: 'POST', url: '/predict', ...multipart([{ ...dicomPart(CT1), name: 'file' }, { ...dicomPart(CT1), name: 'file' }]) })
  t.match(second.json(), { statusCode: 400, code: 'TOO_MANY_FILES', message: /at most 1 file in one request/ }, 'old code: VALIDATION_ERROR')
  const model = (await app.inject({ method: 'GET', url: '/model' })).json()
  t.same(model.limits, { maxFileBytes: app.config.maxFileBytes, maxPixels: app.config.maxPixels, maxBatchFiles: 3, maxFrames: app.config.dicomMaxFrames })
  t.same(model.dicom, { window: { center: 40, width: 400 }, windowSource: 'model', modalities: ['CT'] })
})

t.test('a batch request without any file, or with a file beside "files", names the batch field "files"', async (t) => {
  const app = await build(t)
  const empty = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([]) })
  t.match(empty.json(), { statusCode: 400, code: 'NO_FILE', message: /repeated multipart field "files"/ }, 'the closing boundary only')
  const wrongField = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([{ ...dicomPart(CT1), name: 'file' }]) })
  t.match(wrongField.json(), { code: 'NO_FILE', message: /repeated multipart field "files"/ }, 'the file in "file"')
  const noBody = await app.inject({ method: 'POST', url: '/predict/batch', headers: { 'content-type': 'multipart/form-data; boundary=x' } })
  t.match(noBody.json(), { statusCode: 400, code: 'NO_FILE', message: /repeated multipart field "files"/ }, 'no body at all')
  const stray = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([dicomPart(CT1), { ...dicomPart(CT1), name: 'file' }]) })
  t.match(stray.json(), { statusCode: 400, code: 'VALIDATION_ERROR', message: /Every file of a batch goes in the repeated multipart field "files"/ },
    'a file in "file" beside one in "files" (on the old code: 200, a batch of one)')
  const single = await app.inject({ method: 'POST', url: '/predict', ...multipart([]) })
  t.match(single.json(), { code: 'NO_FILE', message: /the multipart field "file"/ }, '/predict keeps its own wording')
  // curl -F image=@slice.jpg, as other APIs name the field, was told "The request has no file".
  const elsewhere = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ ...dicomPart(CT1), name: 'image' }]) })
  t.same(elsewhere.json(), {
    statusCode: 400,
    code: 'NO_FILE',
    error: 'Bad Request',
    message: 'The request has no file in the multipart field "file", only in a field of another name: send the image in the field "file" (curl -F file=@slice.jpg).'
  }, '/predict with its file in another field says so')
  const note = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ name: 'note', data: 'hello' }]) })
  t.equal(note.json().message, 'The request has no file: send one image in the multipart field "file".', 'a text field alone is no file elsewhere')
})

t.test('Accept: a type /predict cannot produce is 406 NOT_ACCEPTABLE, before any work', async (t) => {
  const app = await build(t)
  const upload = fileUpload(CT1, 'slice.dcm')
  const post = async (accept: string): Promise<LightMyRequestResponse> =>
    await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, accept } })
  for (const accept of ['application/fhir+xml', 'text/html', 'application/json;q=0, application/fhir+json;q=0']) {
    const res = await post(accept)
    t.match(res, { statusCode: 406 }, accept)
    t.match(res.json(), { code: 'NOT_ACCEPTABLE', message: /application\/json or application\/fhir\+json/ })
  }
  const fhir = await post('application/fhir+xml;q=1, application/fhir+json;q=0.5')
  t.equal(fhir.headers['content-type'], 'application/fhir+json; charset=utf-8')
  t.equal(answerType('*/*', ['application/json', 'application/fhir+json']), 'application/json')
  t.equal(answerType('application/*;q=0.2, application/fhir+json', ['application/json', 'application/fhir+json']), 'application/fhir+json')
  t.equal(answerType(undefined, ['application/json']), 'application/json')
})

t.test('Accept: /predict/batch answers JSON only; a FHIR Accept is 406 NOT_ACCEPTABLE, not a JSON answer', async (t) => {
  const app = await build(t)
  const upload = multipart([dicomPart(CT1)])
  const post = async (accept?: string): Promise<LightMyRequestResponse> => await app.inject({
    method: 'POST', url: '/predict/batch', payload: upload.payload, headers: { ...upload.headers, ...(accept === undefined ? {} : { accept }) }
  })
  const fhir = await post('application/fhir+json')
  t.equal(fhir.statusCode, 406)
  t.match(fhir.json(), { code: 'NOT_ACCEPTABLE', message: /available as application\/json only/ })
  for (const accept of [undefined, '*/*', 'application/json', 'application/fhir+json;q=1, application/json;q=0.5']) {
    const res = await post(accept)
    t.equal(res.statusCode, 200, `Accept ${accept ?? '(none)'}`)
    t.equal(res.json().results.length, 1)
  }
})

t.test('FHIR effectiveDateTime is the acquisition time, issued the processing time', async (t) => {
  const app = await build(t)
  const fhir = async (bytes: Buffer): Promise<{ effectiveDateTime: string, issued: string, contained: Array<{ effectiveDateTime?: string }> }> => {
    const upload = fileUpload(bytes, 'slice.dcm')
    return (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, accept: 'application/fhir+json' } })).json()
  }
  const before = Date.now()
  // CT1: AcquisitionDate 19970430, AcquisitionTime 112936, TimezoneOffsetFromUTC -0400 (no AcquisitionDateTime).
  const report = await fhir(CT1)
  t.equal(report.effectiveDateTime, '1997-04-30T11:29:36-04:00')
  t.equal(report.contained[0].effectiveDateTime, report.effectiveDateTime, 'the Observation too')
  t.ok(Date.parse(report.issued) >= before - 1000, `issued ${report.issued} is the processing time`)

  const dir = await scratchDir(t)
  const withDateTime = await modified(dir, CT1, { '(0008,002A)': '20250102030405.5+0100' })
  t.equal((await fhir(withDateTime)).effectiveDateTime, '2025-01-02T03:04:05.5+01:00', 'AcquisitionDateTime wins, with its own offset')
  const noZone = await modified(dir, CT1, { '(0008,0201)': '' })
  t.equal((await fhir(noZone)).effectiveDateTime, '1997-04-30', 'no UTC offset known: the date alone, never a guessed zone')
  const seriesOnly = await modified(dir, CT1, { '(0008,0022)': '', '(0008,0032)': '' })
  t.equal((await fhir(seriesOnly)).effectiveDateTime, '1997-04-30T11:27:49-04:00', 'no acquisition date: SeriesDate + SeriesTime')
})

t.test('FHIR effectiveDateTime of a DICOM slice whose acquisition time is unknown is left out, never the processing time', async (t) => {
  const { app, dir } = await recordingApp(t)
  const validate = fhirR4Validator('DiagnosticReport')
  const fhir = async (bytes: Buffer): Promise<any> => {
    const upload = fileUpload(bytes, 'slice.dcm')
    return (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, accept: 'application/fhir+json' } })).json()
  }
  const answered = await fhir(CT1)
  t.equal(answered.effectiveDateTime, '1997-04-30T11:29:36-04:00')
  // The record keeps no acquisition time. On the old code its report said the slice was acquired when it was read
  // (effectiveDateTime = issued, 2026), where the answer with the same id had said 1997.
  const recorded = (await app.inject({ url: `/predictions/${answered.id as string}`, headers: { accept: 'application/fhir+json' } })).json()
  t.equal(recorded.id, answered.id)
  t.notOk('effectiveDateTime' in recorded, `the recorded report has no acquisition time (${recorded.effectiveDateTime as string})`)
  t.notOk('effectiveDateTime' in recorded.contained[0], 'nor its Observation')
  t.ok(validate(recorded), JSON.stringify(validate.errors?.[0] ?? ''))
  // A file with no date at all (pydicom's charset files are such): the same, on the answer itself.
  const undated = await modified(dir, CT1, Object.fromEntries(['0020', '0021', '0022', '002A', '0030', '0031', '0032'].map((e) => [`(0008,${e})`, '']))) // emptied, as an anonymiser does
  const report = await fhir(undated)
  t.notOk('effectiveDateTime' in report, `no date in the file, none in the report (${report.effectiveDateTime as string})`)
  t.ok(validate(report), JSON.stringify(validate.errors?.[0] ?? ''))
})

t.test('FHIR effectiveDateTime: dates, times and offsets no clock shows are never passed on; the report stays valid FHIR', async (t) => {
  const app = await build(t)
  const validate = fhirR4Validator('DiagnosticReport')
  const dir = await scratchDir(t)
  const cases: Array<[string, Record<string, string>, string]> = [
    ['AcquisitionDateTime with month 13, day 99, 25:61:61', { '(0008,002A)': '20241399256161' }, '1997-04-30T11:29:36-04:00'],
    ['AcquisitionDateTime on 30 February', { '(0008,002A)': '20240230120000+0000' }, '1997-04-30T11:29:36-04:00'],
    ['AcquisitionDateTime with offset +9999', { '(0008,002A)': '20240101120000.123456+9999' }, '2024-01-01'],
    ['AcquisitionDate 99999999', { '(0008,0022)': '99999999' }, '1997-04-30T11:27:49-04:00'],
    ['AcquisitionDate 00000101', { '(0008,0022)': '00000101' }, '1997-04-30T11:27:49-04:00'],
    ['AcquisitionTime 256161', { '(0008,0032)': '256161' }, '1997-04-30'],
    ['TimezoneOffsetFromUTC +1500', { '(0008,0201)': '+1500' }, '1997-04-30']
  ]
  for (const [name, change, expected] of cases) {
    const upload = fileUpload(await modified(dir, CT1, change), 'slice.dcm')
    const report = (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, accept: 'application/fhir+json' } })).json()
    t.equal(report.effectiveDateTime, expected, name)
    t.ok(validate(report), `${name}: valid FHIR R4 ${JSON.stringify(validate.errors?.[0] ?? '')}`)
  }
})
