import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { build, fileUpload, RECORDS_OFF, SHARED } from './helper.js'
import { modified, scratchDir } from './helpers/dcmtk.js'
import { element, text, writeDicom } from './helpers/dicom-writer.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// Header values a PACS export should never carry but a file can: each gets an answer (the value left out), never a
// 500 from the reader or a 503 from the records store.

const slice = (extraElements: Buffer[]): Buffer =>
  writeDicom({ rows: 16, columns: 16, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: Array.from({ length: 256 }, (_, i) => 1000 + 8 * (i % 16)), extraElements })
const ds = (elem: number, value: string): Buffer => element(0x0020, elem, 'DS', text(value))
const AXIAL = '1\\0\\0\\0\\1\\0'

t.test('a plane position or orientation with too few values is ignored: SliceLocation gives the position', async (t) => {
  const app = await build(t)
  const cases: Array<[string, Buffer[]]> = [
    ['ImagePositionPatient with 2 values', [ds(0x0032, '1\\2'), ds(0x0037, AXIAL)]],
    ['ImageOrientationPatient with 3 values', [ds(0x0032, '1\\2\\3'), ds(0x0037, '1\\0\\0')]],
    ['ImagePositionPatient with 1 value, empty orientation', [ds(0x0032, '7'), ds(0x0037, '')]]
  ]
  for (const [name, elements] of cases) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice([...elements, ds(0x1041, '-42.5')]), 'slice.dcm') })
    t.equal(res.statusCode, 200, `${name}: ${res.body.slice(0, 200)}`)
    t.equal(res.json().dicom?.slicePosition, -42.5, `${name}: the position is SliceLocation's`)
  }
  const complete = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice([ds(0x0032, '1\\2\\3'), ds(0x0037, AXIAL)]), 'slice.dcm') })
  t.equal(complete.json().dicom?.slicePosition, 3, 'three and six values still give the projected position')
})

t.test('an InstanceNumber outside the 32-bit IS range is left out, and neither it nor the answers recorded with it fail', async (t) => {
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-odd-attributes-')))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, { config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir, api: true } } })
  const numbered = (value: string): Buffer => slice([element(0x0020, 0x0013, 'IS', text(value))])
  const send = async (bytes: Buffer): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'slice.dcm') })
    return { statusCode: res.statusCode, body: res.json() }
  }
  for (const value of ['99999999999999999999', '2147483648', '-2147483649']) {
    // sent together with well-formed slices, as concurrent callers would: their records are written in one group
    const [odd, ...others] = await Promise.all([send(numbered(value)), send(numbered('12')), send(numbered('-2147483648'))])
    t.equal(odd.statusCode, 200, `InstanceNumber ${value}: ${JSON.stringify(odd.body).slice(0, 200)}`)
    t.equal(odd.body.dicom?.instanceNumber, undefined, `InstanceNumber ${value} is not in the answer`)
    t.same(others.map((o) => [o.statusCode, o.body.dicom?.instanceNumber]), [[200, 12], [200, -2147483648]], 'the slices answered with it keep theirs')
    for (const answer of [odd, ...others]) {
      const stored = await app.inject({ method: 'GET', url: `/predictions/${answer.body.id as string}` })
      t.equal(stored.statusCode, 200, `the answer ${answer.body.id as string} is on record`)
    }
  }
})

t.test('identifiers that are not DICOM UIDs are left out of the answer and the FHIR report; UIDs are kept', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const ct1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
  const send = async (change: Record<string, string>, accept = 'application/json'): Promise<Record<string, any>> => {
    const upload = fileUpload(await modified(dir, ct1, change), 'slice.dcm')
    const res = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, accept } })
    t.equal(res.statusCode, 200, `${JSON.stringify(change)} is classified`)
    return res.json()
  }
  for (const junk of ["1.2.3'; DROP TABLE predictions; --", '1.2.3\\4.5', '1..2', '1.2.', `1.${'2'.repeat(63)}`, 'x'.repeat(300)]) {
    const answer = await send({ '(0020,000D)': junk, '(0020,000E)': junk })
    t.same([answer.dicom?.studyInstanceUid, answer.dicom?.seriesInstanceUid], [undefined, undefined], `${junk.slice(0, 40)}: no study or series UID`)
    t.equal(answer.dicom?.sopInstanceUid, '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457', 'the SOP Instance UID, a UID, is kept')
    const report = await send({ '(0020,000D)': junk }, 'application/fhir+json')
    t.equal(report.imagingStudy, undefined, `${junk.slice(0, 40)}: no ImagingStudy identifier made of it`)
  }
  const kept = await send({ '(0020,000D)': `1.${'2'.repeat(62)}` })
  t.equal(kept.dicom?.studyInstanceUid, `1.${'2'.repeat(62)}`, 'a UID of 64 characters is kept')
})

t.test('pixels at the Pixel Padding Value are black whatever the rescale makes of them (a signed padding in unsigned pixels)', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const ct1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
  const stoneOf = async (bytes: Buffer): Promise<number> => (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'slice.dcm') })).json().probabilities.Stone
  // CT1 is signed with PixelPaddingValue -2000 (HU -3024, black in any soft-tissue window). The same bytes declared
  // unsigned read the padding as 63536, HU 62512: on the old code white around the scan circle, P(Stone) 0.0132
  // against CT1's 0.0214; its tissue values are all positive, so with the padding black the image is CT1's.
  const unsigned = await modified(dir, ct1, { '(0028,0103)': '0' })
  t.equal(await stoneOf(unsigned), await stoneOf(ct1), 'unsigned pixels with padding 63536 (as SS -2000): the answer of CT1')
  const ranged = await modified(dir, ct1, { '(0028,0103)': '0', '(0028,0120)': '63000', '(0028,0121)': '64000' })
  t.equal(await stoneOf(ranged), await stoneOf(ct1), 'a padding range from 63000 to 64000 too')
})

t.test('a NumberOfFrames that is not a whole number is refused as corrupt, not read as its leading digits', async (t) => {
  const app = await build(t)
  // 2 frames of 16x16 pixels: `2.5` was read as 2 and `1e2` as 1 (the first frame alone classified), both answered 200.
  const frames = (value: string): Buffer => writeDicom({
    rows: 16, columns: 16, bitsAllocated: 16, signed: true, rescaleIntercept: -1024,
    values: Array.from({ length: 512 }, (_, i) => 1000 + 8 * (i % 16)),
    extraElements: [element(0x0028, 0x0008, 'IS', text(value))]
  })
  for (const value of ['1e2', '2.5', '0x2', 'two']) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(frames(value), 'frames.dcm') })
    t.equal(res.statusCode, 422, `${value}: ${res.body.slice(0, 160)}`)
    t.same(res.json(), { statusCode: 422, code: 'CORRUPT_DICOM', error: 'Unprocessable Entity', message: 'The DICOM file could not be read: its NumberOfFrames is not a whole number.' }, value)
  }
  const single = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice([element(0x0028, 0x0008, 'IS', text(' 1 '))]), 'slice.dcm') })
  t.equal(single.statusCode, 200, `a padded 1 is a whole number: ${single.body.slice(0, 160)}`)
})
