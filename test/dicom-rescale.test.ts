import { readFile } from 'node:fs/promises'
import t from 'tap'
import { build, fileUpload, multipart, SHARED } from './helper.js'
import { modified, scratchDir } from './helpers/dcmtk.js'

// A Rescale Slope or Intercept that is there but unusable (a slope of 0, NaN, Infinity, words) was read as slope 1 /
// intercept 0: the stored values passed for Hounsfield units and the slice got an answer. It is refused instead, on
// POST /predict and per file in a batch (STOW-RS and the DICOM node: stow.test.ts, dicom-node.test.ts).

const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
const SLOPE = '(0028,1053)'
const INTERCEPT = '(0028,1052)'
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
  const broken = await modified(dir, CT1, { [SLOPE]: '0' })
  const part = (data: Buffer, i: number): { name: string, filename: string, contentType: string, data: Buffer } =>
    ({ name: 'files', filename: `IM${i}.dcm`, contentType: 'application/dicom', data })
  const res = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([part(CT1, 0), part(broken, 1)]) })
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  const { results, summary } = res.json()
  t.ok(results[0].result, 'the intact slice is classified')
  t.match(results[1], { index: 1, error: { code: 'CORRUPT_DICOM', statusCode: 422, message: /Rescale Slope/ } })
  t.same([summary.succeeded, summary.failed], [1, 1])
})
