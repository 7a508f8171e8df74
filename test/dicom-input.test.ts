import { readdir, readFile } from 'node:fs/promises'
import sharp from 'sharp'
import t from 'tap'
import { build, ctKidneyImage, fileUpload, SHARED } from './helper.js'
import { modified, scratchDir } from './helpers/dcmtk.js'
import { writeDicom } from './helpers/dicom-writer.js'
import { PYDICOM_FILES, pydicomFile } from './helpers/pydicom-files.js'
import type { FastifyInstance } from 'fastify'

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7'
const ct1 = async (syntax: string): Promise<Buffer> => await readFile(`${SHARED}/data/dicom/ct1-unc-${syntax}.dcm`)

async function predict (app: FastifyInstance, bytes: Buffer, filename = 'slice.dcm'): Promise<{ statusCode: number, body: any }> {
  const response = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, filename, 'application/octet-stream') })
  return { statusCode: response.statusCode, body: response.json() }
}

/** Every refusal is ours: a typed code and words that never quote a parser. */
function ourWords (message: string): boolean {
  return !/dicomParser|maxPosition|parameter|undefined|Error:|exception/i.test(message)
}

t.test('CT only by default: MR and NM images are refused naming their modality; DICOM_MODALITIES widens the list', async (t) => {
  const app = await build(t)
  const mr = await predict(app, await pydicomFile('MR_small.dcm'))
  t.match(mr, { statusCode: 422, body: { code: 'UNSUPPORTED_MODALITY', message: /modality MR is not classified.*reads CT/ } })
  const nm = await predict(app, await pydicomFile('JPEG2000.dcm')) // a 16-bit NM secondary capture
  t.match(nm, { statusCode: 422, body: { code: 'UNSUPPORTED_MODALITY', message: /modality NM/ } })
  const unnamed = await predict(app, writeDicom({ rows: 8, columns: 8, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, modality: null, values: new Array(64).fill(1000) }))
  t.match(unnamed, { statusCode: 422, body: { code: 'UNSUPPORTED_MODALITY', message: /declares no Modality \(0008,0060\)/ } })
  t.equal((await predict(app, await ct1('explicit-little-endian'))).statusCode, 200, 'CT is classified')

  const wider = await build(t, { config: { dicomModalities: ['CT', 'MR'] } })
  t.equal((await predict(wider, await pydicomFile('MR_small.dcm'))).statusCode, 200, 'DICOM_MODALITIES=CT,MR: MR is classified')
})

t.test('a CT localizer (scout, topogram) is refused as not a slice; other image types of CT are classified', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const scout = await predict(app, await modified(dir, await ct1('explicit-little-endian'), { '(0008,0008)': 'ORIGINAL\\PRIMARY\\LOCALIZER' }))
  // On the old code: 200, the slice classified whatever its ImageType.
  t.match(scout, { statusCode: 415, body: { code: 'UNSUPPORTED_DICOM_IMAGE', message: /localizer \(ImageType LOCALIZER: a scout or topogram/ } })
  const lower = await predict(app, await modified(dir, await ct1('explicit-little-endian'), { '(0008,0008)': 'ORIGINAL\\PRIMARY\\localizer\\CT_SOM5 TOP' }))
  t.equal(lower.body.code, 'UNSUPPORTED_DICOM_IMAGE', 'in any case, with a vendor value after it')
  for (const imageType of ['ORIGINAL\\PRIMARY\\AXIAL', 'DERIVED\\SECONDARY\\REFORMATTED\\AVERAGE']) {
    t.equal((await predict(app, await modified(dir, await ct1('explicit-little-endian'), { '(0008,0008)': imageType }))).statusCode, 200, imageType)
  }
})

t.test('a sagittal slice is refused naming its plane; axial, coronal and slightly oblique slices are classified', async (t) => {
  const app = await build(t)
  const dir = await scratchDir(t)
  const oriented = async (orientation: string): Promise<{ statusCode: number, body: any }> =>
    await predict(app, await modified(dir, await ct1('explicit-little-endian'), { '(0020,0037)': orientation }))
  // On the old code: 200, the slice classified whatever its plane.
  t.match(await oriented('0\\1\\0\\0\\0\\-1'), { statusCode: 415, body: { code: 'UNSUPPORTED_DICOM_IMAGE', message: /sagittal slice .* axial and coronal/ } }, 'sagittal')
  t.equal((await oriented('0\\0.98\\0.2\\0\\-0.2\\-0.98')).body.code, 'UNSUPPORTED_DICOM_IMAGE', 'oblique, nearest sagittal')
  for (const [plane, orientation] of [['axial', '1\\0\\0\\0\\1\\0'], ['coronal', '1\\0\\0\\0\\0\\-1'], ['axial tilted 15 degrees', '1\\0\\0\\0\\0.966\\-0.259']]) {
    t.equal((await oriented(orientation)).statusCode, 200, plane)
  }
})

t.test('a secondary capture of a CT (8-bit display pixels, no rescale) gets the answer of the same pixels sent as PNG', async (t) => {
  const app = await build(t)
  const { data, info } = await sharp(await ctKidneyImage('test/stone')).greyscale().raw().toBuffer({ resolveWithObject: true })
  const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: 1 } }).png().toBuffer()
  const image = { rows: info.height, columns: info.width, bitsAllocated: 8 as const, signed: false, values: [...data] }
  const asPng = await predict(app, png, 'slice.png')
  t.equal(asPng.statusCode, 200)
  const captures = {
    'SC of a CT': writeDicom({ ...image, sopClassUid: SECONDARY_CAPTURE }),
    'CT class, 8-bit, no rescale': writeDicom(image),
    'SC, modality OT': writeDicom({ ...image, sopClassUid: SECONDARY_CAPTURE, modality: 'OT' }),
    'SC, modality SC': writeDicom({ ...image, sopClassUid: SECONDARY_CAPTURE, modality: 'SC' })
  }
  for (const [name, bytes] of Object.entries(captures)) {
    const answer = await predict(app, bytes)
    t.equal(answer.statusCode, 200, name)
    t.same(answer.body.probabilities, asPng.body.probabilities, `${name}: P(Stone) ${answer.body.probabilities.Stone} = PNG's`)
  }
  // Before, the grey values were windowed as HU (40/400): 0..255 became 102..255, another answer.
  const asHu = await predict(app, writeDicom({ ...image, rescaleIntercept: 0 }))
  t.not(asHu.body.probabilities.Stone, asPng.body.probabilities.Stone, 'the same values read as HU give another answer')
  const mrCapture = await predict(app, writeDicom({ ...image, sopClassUid: SECONDARY_CAPTURE, modality: 'MR' }))
  t.match(mrCapture, { statusCode: 422, body: { code: 'UNSUPPORTED_MODALITY', message: /MR/ } }, 'a capture of an MR is not a CT')
  const real = await predict(app, await pydicomFile('image_dfl.dcm')) // OT secondary capture, 8-bit, deflated
  t.equal(real.statusCode, 200, `pydicom image_dfl.dcm (OT, 8-bit secondary capture): ${JSON.stringify(real.body.code)}`)
})

t.test('readable DICOM files without an image: 422 DICOM_NO_PIXEL_DATA in our words', async (t) => {
  const app = await build(t)
  for (const name of ['test-SR.dcm', 'waveform_ecg.dcm', 'rtplan.dcm', 'rtstruct.dcm']) {
    const answer = await predict(app, await pydicomFile(name))
    t.match(answer, { statusCode: 422, body: { code: 'DICOM_NO_PIXEL_DATA', message: /has no Pixel Data \(7FE0,0010\)/ } }, name)
    t.ok(ourWords(answer.body.message), `${name}: ${answer.body.message}`)
  }
})

t.test('a data set without the Part 10 preamble is read as DICOM', async (t) => {
  const app = await build(t)
  const part10 = await ct1('explicit-little-endian')
  const reference = await predict(app, part10)
  // Without the preamble and "DICM" (the File Meta group first), and without the File Meta group too (group 0008 first).
  const metaLength = (bytes: Buffer): number => 132 + 12 + bytes.readUInt32LE(140)
  const implicit = await ct1('implicit-little-endian')
  const variants = {
    'explicit, File Meta group first': part10.subarray(132),
    'explicit, data set only': part10.subarray(metaLength(part10)),
    'implicit, data set only': implicit.subarray(metaLength(implicit))
  }
  for (const [name, bytes] of Object.entries(variants)) {
    t.equal(bytes.readUInt16LE(0), name.includes('File Meta') ? 0x0002 : 0x0008, `${name} starts where it should`)
    const answer = await predict(app, bytes)
    t.equal(answer.statusCode, 200, `${name}: ${JSON.stringify(answer.body.message)}`)
    t.same(answer.body.probabilities, reference.body.probabilities, `${name}: the answer of the Part 10 file`)
    t.same(answer.body.dicom, reference.body.dicom)
  }
  // pydicom's ExplVR_LitEndNoMeta.dcm is such a data set, of an RT plan: a DICOM refusal, not "not an image".
  const noMeta = await predict(app, await pydicomFile('ExplVR_LitEndNoMeta.dcm'))
  t.match(noMeta, { statusCode: 422, body: { code: 'DICOM_NO_PIXEL_DATA' } })
  const text = await predict(app, Buffer.from('\x08\x00 not DICOM at all, just bytes'))
  t.equal(text.body.code === 'UNSUPPORTED_MEDIA_TYPE' || text.body.code === 'CORRUPT_DICOM', true, `random bytes: ${text.body.code}`)
})

t.test('every file of pydicom\'s corpus: 200 or a typed 4xx in our words, never a 500 or a parser\'s text', async (t) => {
  const app = await build(t)
  const names = (await readdir(PYDICOM_FILES)).filter((name) => name.endsWith('.dcm')).sort()
  t.ok(names.length >= 60, `${names.length} files`)
  const outcomes = new Map<string, number>()
  for (const name of names) {
    const answer = await predict(app, await pydicomFile(name))
    const outcome = answer.statusCode === 200 ? '200' : `${answer.statusCode} ${answer.body.code}`
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    if (answer.statusCode === 200) {
      t.ok(answer.body.dicom !== undefined, `${name}: classified, with its DICOM block`)
      continue
    }
    t.ok([400, 415, 422].includes(answer.statusCode), `${name}: ${answer.statusCode} ${answer.body.code}`)
    t.ok(ourWords(answer.body.message), `${name}: ${answer.body.message}`)
  }
  t.comment([...outcomes].sort().map(([outcome, count]) => `${count} x ${outcome}`).join(', '))
})
