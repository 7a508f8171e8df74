import { readFile } from 'node:fs/promises'
import t from 'tap'
import { build, fileUpload, multipart, SHARED } from './helper.js'
import { modified, scratchDir } from './helpers/dcmtk.js'

// A Rescale Slope or Intercept that is there but unusable (a slope of 0, NaN, Infinity, words) was read as slope 1 /
// intercept 0: the stored values passed for Hounsfield units and the slice got an answer. It is refused instead, on
// POST /predict and per file in a batch (STOW-RS and the DICOM node: stow.test.ts, dicom-node.test.ts). So is a CT
// slice with one of the two and not the other (both are Type 1): the missing one was read as the identity.

const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
const SLOPE = '(0028,1053)'
const INTERCEPT = '(0028,1052)'
const SOP_INSTANCE = '(0008,0018)'
const BROKEN: Array<[string, Record<string, string>, RegExp]> = [
  ['slope 0', { [SLOPE]: '0' }, /Rescale Slope \(0028,1053\) is 0/],
  ['slope 0.000', { [SLOPE]: '0.000' }, /Rescale Slope \(0028,1053\) is 0/],
  ['slope NaN', { [SLOPE]: 'NaN' }, /Rescale Slope \(0028,1053\) is not a number/],
  ['slope Infinity', { [SLOPE]: 'Infinity' }, /Rescale Slope \(0028,1053\) is not a number/],
  ['slope 1e999', { [SLOPE]: '1e999' }, /Rescale Slope \(0028,1053\) is not a number/],
  ['slope "one"', { [SLOPE]: 'one' }, /Rescale Slope \(0028,1053\) is not a number/],
  ['slope "1.5mm"', { [SLOPE]: '1.5mm' }, /Rescale Slope \(0028,1053\) is not a number/],
  ['intercept "minus"', { [INTERCEPT]: 'minus' }, /Rescale Intercept \(0028,1052\) is not a number/]
]

t.test('POST /predict: an unusable Rescale Slope or Intercept is 422 CORRUPT_DICOM naming it; usable ones are classified', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const send = async (change: Record<string, string>): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await modified(dir, CT1, change), 'slice.dcm', 'application/dicom') })
    return { statusCode: res.statusCode, body: res.json() }
  }
  for (const [name, change, message] of BROKEN) {
    const { statusCode, body } = await send(change)
    t.equal(statusCode, 422, `${name}: ${JSON.stringify(body).slice(0, 200)}`)
    t.match(body, { code: 'CORRUPT_DICOM', message }, name)
  }
  const intact = await send({})
  t.equal(intact.statusCode, 200)
  for (const [name, change] of [['slope 1.0', { [SLOPE]: '1.0' }], ['slope +1E0 padded', { [SLOPE]: ' +1E0 ' }], ['intercept -1024.0', { [INTERCEPT]: '-1024.0' }]] as const) {
    const same = await send(change)
    t.equal(same.statusCode, 200, name)
    t.equal(same.body.probabilities?.Stone, intact.body.probabilities.Stone, `${name}: the same HU, the same answer`)
  }
})

t.test('POST /predict/batch: the file with a slope of 0 has its own CORRUPT_DICOM, the others are classified', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  // Its own SOP Instance UID: a second file under CT1's UID would be refused as a repeat of the first (DUPLICATE_SOP_INSTANCE).
  const broken = await modified(dir, CT1, { [SLOPE]: '0', [SOP_INSTANCE]: '2.25.1053' })
  const part = (data: Buffer, i: number): { name: string, filename: string, contentType: string, data: Buffer } =>
    ({ name: 'files', filename: `IM${i}.dcm`, contentType: 'application/dicom', data })
  const res = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([part(CT1, 0), part(broken, 1)]) })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const { results, summary } = res.json()
  t.ok(results[0].result, 'the intact slice is classified')
  t.match(results[1], { index: 1, error: { code: 'CORRUPT_DICOM', statusCode: 422, message: /Rescale Slope/ } })
  t.same([summary.succeeded, summary.failed], [1, 1])
})

t.test('a CT slice with a Rescale Intercept and no Slope, or the reverse, is 422 CORRUPT_DICOM naming the missing one; with neither it is read as the identity', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const send = async (change: Record<string, string | null>): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await modified(dir, CT1, change), 'slice.dcm', 'application/dicom') })
    return { statusCode: res.statusCode, body: res.json() }
  }
  // CT1 carries slope 1, intercept -1024: on the old code both halves were 200, the one without its intercept with
  // every HU 1024 too high.
  t.match(await send({ [SLOPE]: null }), { statusCode: 422, body: { code: 'CORRUPT_DICOM', message: /Rescale Slope \(0028,1053\) is missing beside its Rescale Intercept \(0028,1052\)/ } })
  t.match(await send({ [INTERCEPT]: null }), { statusCode: 422, body: { code: 'CORRUPT_DICOM', message: /Rescale Intercept \(0028,1052\) is missing beside its Rescale Slope \(0028,1053\)/ } })
  t.match(await send({ [SLOPE]: '' }), { statusCode: 422, body: { code: 'CORRUPT_DICOM', message: /Rescale Slope \(0028,1053\) is missing/ } }, 'an empty slope is a missing one')
  // With neither, no Modality LUT is given: the stored values are taken as they are (docs/hospital.md says why).
  const neither = await send({ [SLOPE]: null, [INTERCEPT]: null })
  t.equal(neither.statusCode, 200, JSON.stringify(neither.body).slice(0, 200))
  const identity = await send({ [SLOPE]: '1', [INTERCEPT]: '0' })
  t.equal(neither.body.probabilities.Stone, identity.body.probabilities.Stone, 'neither reads as slope 1, intercept 0')
})

t.test('POST /predict/batch: the CT slice without its Rescale Slope has its own CORRUPT_DICOM beside a classified one', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const half = await modified(dir, CT1, { [SLOPE]: null, [SOP_INSTANCE]: '2.25.1052' })
  const res = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([CT1, half].map((data, i) => ({ name: 'files', filename: `IM${i}.dcm`, contentType: 'application/dicom', data }))) })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const { results, summary } = res.json()
  t.ok(results[0].result, 'the intact slice is classified')
  t.match(results[1], { index: 1, error: { code: 'CORRUPT_DICOM', statusCode: 422, message: /Rescale Slope \(0028,1053\) is missing/ } })
  t.same([summary.succeeded, summary.failed], [1, 1])
})
