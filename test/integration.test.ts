import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { build, ctKidneyImage, fileUpload, multipart, SHARED } from './helper.js'
import { SYNTHETIC_PATIENT, writeDicom } from './helpers/dicom-writer.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'

const DICOM_DIR = join(SHARED, 'data/dicom')
const CT1 = ['ct1-unc-implicit-little-endian.dcm', 'ct1-unc-explicit-little-endian.dcm', 'ct1-unc-explicit-big-endian.dcm', 'ct1-unc-jpeg-ls.dcm']
const CT1_UIDS = {
  studyInstanceUid: '1.3.6.1.4.1.5962.1.2.1.20040826185059.5457',
  seriesInstanceUid: '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457',
  sopInstanceUid: '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457'
}
const dicom = async (name: string): Promise<Buffer> => await readFile(join(DICOM_DIR, name))
const dicomUpload = (data: Buffer): ReturnType<typeof fileUpload> => fileUpload(data, 'slice.dcm', 'application/dicom')

t.test('POST /predict: every DICOM syntax gives the same prediction and echoes the UIDs', async (t) => {
  const app = await build(t)
  const answers = []
  for (const name of CT1) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...dicomUpload(await dicom(name)) })
    t.equal(res.statusCode, 200, `${name}: ${res.body}`)
    answers.push(res.json())
  }
  for (const answer of answers) {
    t.match(answer.dicom, { ...CT1_UIDS, instanceNumber: 1 })
    t.same(answer.probabilities, answers[0].probabilities)
  }
  const stored = await readdir(app.config.uploadDir)
  t.equal(stored.filter((name) => name.endsWith('.dcm')).length, 4, 'DICOM uploads are kept like images, under their UUID')
})

t.test('patient name, ID and birth date reach neither the answer, the logs nor the stored file name', async (t) => {
  let logs = ''
  const stream = new Writable({ write (chunk, _encoding, done) { logs += String(chunk); done() } })
  const app = await build(t, { logger: { level: 'trace', stream } })
  const synthetic = writeDicom({ rows: 64, columns: 64, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: Array.from({ length: 4096 }, (_, i) => i % 2000) })
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(synthetic, `${SYNTHETIC_PATIENT.name}.dcm`, 'application/dicom') })
  t.equal(res.statusCode, 200, res.body)
  const fhir = await app.inject({ method: 'POST', url: '/predict', headers: { ...dicomUpload(synthetic).headers, accept: 'application/fhir+json' }, payload: dicomUpload(synthetic).payload })
  t.equal(fhir.statusCode, 200)
  const names = (await readdir(app.config.uploadDir)).join('\n')
  t.ok(logs.length > 0, 'the requests were logged')
  for (const value of Object.values(SYNTHETIC_PATIENT)) {
    for (const [where, text] of [['answer', res.body], ['FHIR answer', fhir.body], ['logs', logs], ['stored names', names]]) {
      t.notMatch(text, value, `${value} not in the ${where}`)
    }
  }
})

t.test('a compressed syntax without a codec is a 415 naming its UID; more frames than DICOM_MAX_FRAMES is a typed 422', async (t) => {
  const app = await build(t)
  const jpeg = writeDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.51', rows: 8, columns: 8, bitsAllocated: 16, signed: false, encapsulatedFragment: Buffer.from([0xff, 0xd8, 0xff, 0xd9]) })
  const res = await app.inject({ method: 'POST', url: '/predict', ...dicomUpload(jpeg) })
  t.equal(res.statusCode, 415)
  t.equal(res.json().code, 'UNSUPPORTED_TRANSFER_SYNTAX')
  t.match(res.json().message, '1.2.840.10008.1.2.4.51 (JPEG Extended (12-bit))')
  const count = app.config.dicomMaxFrames + 1
  const frames = writeDicom({ rows: 2, columns: 2, frames: count, bitsAllocated: 8, signed: false, values: new Array(4 * count).fill(7) })
  const multi = await app.inject({ method: 'POST', url: '/predict', ...dicomUpload(frames) })
  t.equal(multi.statusCode, 422)
  t.equal(multi.json().code, 'TOO_MANY_FRAMES')
  t.match(multi.json().message, `${count} frames, more than the limit of ${count - 1}`)
  t.equal((await readdir(app.config.uploadDir)).length, 0, 'refused files are not stored')
})

t.test('Accept: application/fhir+json answers a valid FHIR R4 DiagnosticReport', async (t) => {
  const app = await build(t)
  const upload = dicomUpload(await dicom('ct1-unc-explicit-little-endian.dcm'))
  const json = (await app.inject({ method: 'POST', url: '/predict', ...upload })).json()
  const res = await app.inject({ method: 'POST', url: '/predict', headers: { ...upload.headers, accept: 'application/fhir+json' }, payload: upload.payload })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/fhir\+json/)
  const report = res.json()
  const validate = fhirR4Validator('DiagnosticReport')
  t.ok(validate(report), JSON.stringify(validate.errors))
  t.equal(report.status, 'preliminary')
  t.same(report.imagingStudy[0].identifier, { system: 'urn:dicom:uid', value: `urn:oid:${CT1_UIDS.studyInstanceUid}` })
  const observation = report.contained.find((r: { resourceType: string }) => r.resourceType === 'Observation')
  t.equal(observation.valueQuantity.value, json.probabilities.Stone, 'the same probability as the JSON answer')
  t.equal(observation.component[0].valueQuantity.value, app.model.get().spec.threshold)
  t.equal(report.conclusionCode[0].coding[0].code, json.prediction === 'Stone' ? '95570007' : '281900007')
  const device = report.contained.find((r: { resourceType: string }) => r.resourceType === 'Device')
  t.equal(device.deviceName[0].name, app.model.get().spec.name)
})

t.test('POST /predict/batch: mixed files, one result or typed error each, in order, with a series conclusion', async (t) => {
  const app = await build(t)
  const image = await ctKidneyImage('test/stone')
  const parts = [
    { name: 'files', filename: 'a.dcm', data: await dicom('ct1-unc-explicit-little-endian.dcm') },
    { name: 'files', filename: 'b.jpg', data: image },
    { name: 'files', filename: 'c.txt', data: 'not an image' },
    { name: 'files', filename: 'd.dcm', data: await dicom('ct1-unc-jpeg-ls.dcm') },
    { name: 'files', filename: 'e.dcm', data: await dicom('ct-small-pydicom.dcm') }
  ]
  const res = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart(parts) })
  t.equal(res.statusCode, 200)
  const { results, summary } = res.json()
  t.same(results.map((r: { index: number }) => r.index), [0, 1, 2, 3, 4])
  t.equal(results[2].error.code, 'UNSUPPORTED_MEDIA_TYPE')
  t.equal(results[2].result, undefined)
  const single = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(image) })).json()
  t.same(results[1].result.probabilities, single.probabilities, 'the batch answers like /predict')
  // Files 0 and 3 are one SOP instance in two encodings (the same pixels: dicom.test.ts): classified once, the first.
  t.match(results[3], { error: { code: 'DUPLICATE_SOP_INSTANCE', statusCode: 409 } })
  t.same({ files: summary.files, succeeded: summary.succeeded, failed: summary.failed }, { files: 5, succeeded: 3, failed: 2 })
  const predictions = [0, 1, 4].map((i) => results[i].result.prediction)
  t.same(summary.counts, { Normal: predictions.filter((p) => p === 'Normal').length, Stone: predictions.filter((p) => p === 'Stone').length })
  t.equal(summary.series.length, 2, 'two DICOM series')
  const ct1 = summary.series.find((s: { seriesInstanceUid: string }) => s.seriesInstanceUid === CT1_UIDS.seriesInstanceUid)
  t.equal(ct1.slices, 1)
  t.equal(ct1.conclusion, results[0].result.prediction, 'a series of one slice says what its slice says')
  t.same(ct1.stoneSlices.map((s: { index: number }) => s.index), results[0].result.prediction === 'Stone' ? [0] : [])
})

t.test('batch limits: no file is 400 NO_FILE, more than BATCH_MAX_FILES is 400 TOO_MANY_FILES; /predict keeps one file', async (t) => {
  const app = await build(t, { config: { batchMaxFiles: 2 } })
  const image = await ctKidneyImage('test/normal')
  const none = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([{ name: 'note', data: 'x' }]) })
  t.equal(none.statusCode, 400)
  t.equal(none.json().code, 'NO_FILE')
  const three = multipart([0, 1, 2].map((i) => ({ name: 'files', filename: `${i}.jpg`, data: image })))
  const tooMany = await app.inject({ method: 'POST', url: '/predict/batch', ...three })
  t.equal(tooMany.statusCode, 400)
  t.equal(tooMany.json().code, 'TOO_MANY_FILES')
  const two = await app.inject({ method: 'POST', url: '/predict', ...multipart([0, 1].map((i) => ({ name: 'file', filename: `${i}.jpg`, data: image }))) })
  t.equal(two.statusCode, 400)
  t.equal(two.json().code, 'TOO_MANY_FILES')
})
