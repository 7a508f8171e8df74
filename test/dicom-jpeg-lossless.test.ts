import { readFile } from 'node:fs/promises'
import dicomParser from 'dicom-parser'
import t from 'tap'
import { readModalityFrames } from '../inference/dicom/decode-dicom.js'
import { build, fileUpload, SHARED } from './helper.js'
import { scratchDir, transcoded } from './helpers/dcmtk.js'
import { writeDicom } from './helpers/dicom-writer.js'
import { pydicomFile } from './helpers/pydicom-files.js'

const MAX_PIXELS = 4096 * 4096
const LOSSLESS = '1.2.840.10008.1.2.4.57'
const LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70'
const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)

/** dcmcjpeg's encodings: SV1 (.70), and process 14 (.57) with the predictors dcmtk offers that .57 alone allows. */
const ENCODINGS: Array<{ name: string, options: string[], syntax: string }> = [
  { name: '+e1 (SV1)', options: ['+e1'], syntax: LOSSLESS_SV1 },
  { name: '+el +sv 6', options: ['+el'], syntax: LOSSLESS },
  { name: '+el +sv 7', options: ['+el', '+sv', '7'], syntax: LOSSLESS },
  { name: '+el +sv 2', options: ['+el', '+sv', '2'], syntax: LOSSLESS }
]

function transferSyntax (bytes: Buffer): string | undefined {
  return dicomParser.parseDicom(bytes, { untilTag: 'x00020010' }).string('x00020010')
}

/** The first fragment of the encapsulated Pixel Data: the JPEG codestream of a single-frame file. */
function codestream (bytes: Buffer): Buffer {
  const dataSet = dicomParser.parseDicom(bytes)
  const pixels = dataSet.elements.x7fe00010
  return Buffer.from(dicomParser.readEncapsulatedPixelDataFromFragments(dataSet, pixels, 0, pixels.fragments?.length))
}

t.test('JPEG Lossless (.57, .70) by dcmcjpeg: every pixel equals dcmtk\'s own decode (dcmdjpeg) and the original', async (t) => {
  const dir = await scratchDir(t)
  const sources = {
    'CT1 (signed 16-bit CT)': CT1,
    'CT_small (pydicom)': await pydicomFile('CT_small.dcm'),
    'MR_small (pydicom, 16-bit)': await pydicomFile('MR_small.dcm')
  }
  for (const [source, original] of Object.entries(sources)) {
    const expected = await readModalityFrames(original, MAX_PIXELS)
    for (const { name, options, syntax } of ENCODINGS) {
      const compressed = await transcoded(dir, original, 'dcmcjpeg', options)
      t.equal(transferSyntax(compressed), syntax, `${source} ${name}: ${syntax}`)
      const decodedByDcmtk = await transcoded(dir, compressed, 'dcmdjpeg', [], 'compressed.dcm')
      const ours = await readModalityFrames(compressed, MAX_PIXELS)
      const theirs = await readModalityFrames(decodedByDcmtk, MAX_PIXELS)
      const differing = ours.frames[0].filter((value, i) => value !== theirs.frames[0][i]).length
      t.equal(differing, 0, `${source} ${name}: ${ours.frames[0].length} pixels equal to dcmdjpeg's`)
      t.same([ours.width, ours.height], [expected.width, expected.height])
      t.ok(ours.frames[0].every((value, i) => value === expected.frames[0][i]), `${source} ${name}: lossless, equal to the original`)
    }
  }
})

t.test('POST /predict: JPEG Lossless gives the answer of the uncompressed slice', async (t) => {
  const dir = await scratchDir(t)
  const app = await build(t)
  const predict = async (bytes: Buffer): Promise<{ statusCode: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'slice.dcm', 'application/dicom') })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const reference = await predict(CT1)
  for (const { name, options } of ENCODINGS.slice(0, 2)) {
    const answer = await predict(await transcoded(dir, CT1, 'dcmcjpeg', options))
    t.equal(answer.statusCode, 200, name)
    t.same(answer.body.probabilities, reference.body.probabilities, `${name}: P(Stone) ${answer.body.probabilities?.Stone}`)
  }
})

t.test('the codestream\'s frame header is checked against Rows/Columns/BitsAllocated before decoding', async (t) => {
  const dir = await scratchDir(t)
  const stream = codestream(await transcoded(dir, CT1, 'dcmcjpeg', ['+e1']))
  const slice = { rows: 512, columns: 512, bitsAllocated: 16 as const, signed: true, rescaleIntercept: -1024, transferSyntaxUid: LOSSLESS_SV1 }
  const withSize = (width: number, height: number): Buffer => {
    const copy = Buffer.from(stream)
    const sof = copy.indexOf(Buffer.from([0xff, 0xc3]))
    copy.writeUInt16BE(height, sof + 5)
    copy.writeUInt16BE(width, sof + 7)
    return copy
  }
  const read = async (bytes: Buffer): Promise<unknown> => await readModalityFrames(bytes, 1_000_000)
  t.ok(await read(writeDicom({ ...slice, encapsulatedFragment: stream })), 'control: the codestream as encoded')
  await t.rejects(read(writeDicom({ ...slice, encapsulatedFragment: withSize(20000, 20000) })), { code: 'IMAGE_TOO_LARGE' }, 'a frame header past the pixel budget')
  await t.rejects(read(writeDicom({ ...slice, encapsulatedFragment: withSize(600, 600) })),
    { code: 'CORRUPT_DICOM', message: /JPEG Lossless SV1 codestream declares 600x600x1 at 16 bits, the header 512x512x1 at 16/ })
  await t.rejects(read(writeDicom({ ...slice, rows: 16, columns: 16, encapsulatedFragment: stream })), { code: 'CORRUPT_DICOM' }, 'header smaller than the codestream')
  await t.rejects(read(writeDicom({ ...slice, bitsAllocated: 8, signed: false, encapsulatedFragment: stream })), { code: 'CORRUPT_DICOM' }, '16-bit samples, 8 allocated')
  const baseline = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0, 0xff, 0xda, 0, 2, 0xff, 0xd9])
  await t.rejects(read(writeDicom({ ...slice, encapsulatedFragment: baseline })), { code: 'CORRUPT_DICOM', message: /no frame header/ }, 'a baseline codestream in a lossless file')
  const cut = stream.subarray(0, 2000)
  await t.rejects(read(writeDicom({ ...slice, encapsulatedFragment: cut })), { code: 'CORRUPT_DICOM' }, 'a truncated codestream')
})
