import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { decodeImage } from '../inference/decode.js'
import { decodeDicom, decodeDicomInstance, readModalityFrames } from '../inference/dicom/decode-dicom.js'
import { windowValue } from '../inference/dicom/voi.js'
import sharp from 'sharp'
import { encodeJ2KLossless, encodeRle } from './helpers/dicom-encoders.js'
import { SYNTHETIC_PATIENT, SYNTHETIC_UIDS, writeDicom } from './helpers/dicom-writer.js'
import { ctKidneyFiles } from './helper.js'

const DICOM_DIR = fileURLToPath(new URL('../../shared/data/dicom/', import.meta.url))
const UNCOMPRESSED = ['ct1-unc-implicit-little-endian.dcm', 'ct1-unc-explicit-little-endian.dcm', 'ct1-unc-explicit-big-endian.dcm']
const MAX_PIXELS = 4096 * 4096

interface HuReference {
  rows: number
  columns: number
  min: number
  max: number
  sum: number
  studyInstanceUid: string
  seriesInstanceUid: string
  sopInstanceUid: string
  samples: Array<{ x: number, y: number, hu: number }>
}
// Written by scripts/dicom-hu-reference.py, which walks the data elements with Python's struct module only.
const reference = JSON.parse(await readFile(new URL('fixtures/dicom/hu-reference.json', import.meta.url), 'utf8')) as Record<string, HuReference>
const dicom = async (name: string): Promise<Buffer> => await readFile(DICOM_DIR + name)

function checkAgainstReference (t: Test, hu: Float64Array, width: number, expected: HuReference): void {
  t.equal(width * (hu.length / width), expected.rows * expected.columns)
  let min = Infinity; let max = -Infinity; let sum = 0
  for (const value of hu) { min = Math.min(min, value); max = Math.max(max, value); sum += value }
  t.same({ min, max, sum }, { min: expected.min, max: expected.max, sum: expected.sum })
  const mismatches = expected.samples.filter(({ x, y, hu: value }) => hu[y * width + x] !== value)
  t.same(mismatches, [], `${expected.samples.length} sampled pixels match the independent reader`)
}

t.test('HU of every uncompressed file match the independent Python reader', async (t) => {
  t.equal(Object.keys(reference).length, 4, 'the reference covers the 4 uncompressed files')
  for (const [name, expected] of Object.entries(reference)) {
    const { width, height, frames } = await readModalityFrames(await dicom(name), MAX_PIXELS)
    t.same([width, height, frames.length], [expected.columns, expected.rows, 1], name)
    checkAgainstReference(t, frames[0], width, expected)
  }
})

t.test('the JPEG-LS file decodes losslessly to the HU of the uncompressed slice', async (t) => {
  const { width, frames } = await readModalityFrames(await dicom('ct1-unc-jpeg-ls.dcm'), MAX_PIXELS)
  checkAgainstReference(t, frames[0], width, reference['ct1-unc-explicit-little-endian.dcm'])
})

t.test('JPEG 2000 and RLE re-encodings of the real slice decode to the same HU', async (t) => {
  const explicit = reference['ct1-unc-explicit-little-endian.dcm']
  const { frames } = await readModalityFrames(await dicom('ct1-unc-explicit-little-endian.dcm'), MAX_PIXELS)
  // Stored values back from HU (slope 1, intercept -1024), re-encoded by an encoder the service does not use.
  const stored = Int16Array.from(frames[0], (hu) => hu + 1024)
  const image = { rows: 512, columns: 512, bitsAllocated: 16 as const, signed: true, rescaleIntercept: -1024 }
  const encodings = {
    '1.2.840.10008.1.2.4.90': await encodeJ2KLossless(stored, 512, 512),
    '1.2.840.10008.1.2.5': encodeRle(stored)
  }
  for (const [transferSyntaxUid, encapsulatedFragment] of Object.entries(encodings)) {
    const bytes = writeDicom({ ...image, transferSyntaxUid, encapsulatedFragment })
    const decoded = await readModalityFrames(bytes, MAX_PIXELS)
    checkAgainstReference(t, decoded.frames[0], decoded.width, explicit)
  }
  const rle = encodings['1.2.840.10008.1.2.5']
  const cutBeforeSegment2 = writeDicom({ ...image, transferSyntaxUid: '1.2.840.10008.1.2.5', encapsulatedFragment: rle.subarray(0, 5000) })
  await t.rejects(readModalityFrames(cutBeforeSegment2, MAX_PIXELS), { code: 'CORRUPT_DICOM', message: /RLE segment 2 starts at \d+, outside the frame/ },
    'the RLE header is checked before decoding')
  const cutInSegment2 = writeDicom({ ...image, transferSyntaxUid: '1.2.840.10008.1.2.5', encapsulatedFragment: rle.subarray(0, rle.length - 1000) })
  await t.rejects(readModalityFrames(cutInSegment2, MAX_PIXELS), { code: 'CORRUPT_DICOM', message: /RLE segment 2 ends after/ })
})

t.test('JPEG baseline: a real greyscale CT JPEG wrapped in DICOM decodes like sharp decodes the JPEG', async (t) => {
  const [file] = await ctKidneyFiles('test/stone', 1)
  const jpeg = await readFile(file)
  const { data, info } = await sharp(jpeg).greyscale().raw().toBuffer({ resolveWithObject: true })
  const bytes = writeDicom({ transferSyntaxUid: '1.2.840.10008.1.2.4.50', rows: info.height, columns: info.width, bitsAllocated: 8, signed: false, encapsulatedFragment: jpeg })
  const { frames } = await readModalityFrames(bytes, MAX_PIXELS)
  let maxDifference = 0
  frames[0].forEach((value, i) => { maxDifference = Math.max(maxDifference, Math.abs(value - data[i])) })
  t.equal(frames[0].length, info.width * info.height)
  t.ok(maxDifference <= 1, `libjpeg-turbo (WebAssembly) and sharp agree within 1 grey level (max difference ${maxDifference})`)
})

t.test('the three uncompressed syntaxes and JPEG-LS give identical 8-bit pixels and UIDs', async (t) => {
  const decoded = await Promise.all([...UNCOMPRESSED, 'ct1-unc-jpeg-ls.dcm'].map(async (name) =>
    await decodeDicom(await dicom(name), { channels: 1, maxPixels: MAX_PIXELS })))
  const [first, ...rest] = decoded
  t.same([first.frames[0].width, first.frames[0].height, first.frames[0].channels, first.frames[0].pixels.length], [512, 512, 1, 512 * 512])
  for (const other of rest) {
    t.ok(other.frames[0].pixels.equals(first.frames[0].pixels), `${other.transferSyntaxUid} pixels equal`)
    t.same(other.identifiers, first.identifiers)
  }
  const expected = reference['ct1-unc-explicit-little-endian.dcm']
  t.same(first.identifiers, {
    studyInstanceUid: expected.studyInstanceUid, seriesInstanceUid: expected.seriesInstanceUid, sopInstanceUid: expected.sopInstanceUid
  })
  t.same(first.window, { center: 40, width: 400, source: 'model' }, 'no window given: the documented abdomen window')
  // Spot checks through the window: air and the outside-FOV padding are black, dense bone is white.
  const grey = first.frames[0].pixels
  const air = expected.samples.filter((s) => s.hu <= -160)
  const dense = expected.samples.filter((s) => s.hu > 240)
  t.ok(air.length > 0 && dense.length > 0, 'the slice has sampled pixels below and above the window')
  t.same(air.map((s) => grey[s.y * 512 + s.x]).filter((v) => v !== 0), [])
  t.same(dense.map((s) => grey[s.y * 512 + s.x]).filter((v) => v !== 255), [])
})

t.test('the window table gives every pixel the grey of its HU through the VOI function, as computed per pixel', async (t) => {
  for (const name of ['ct1-unc-explicit-little-endian.dcm', 'ct1-unc-jpeg-ls.dcm', 'ct-small-pydicom.dcm']) {
    const bytes = await dicom(name)
    const { frames: [hu] } = await readModalityFrames(bytes, MAX_PIXELS)
    for (const window of [{ center: 40, width: 400 }, { center: 300, width: 1500 }, { center: -600, width: 1 }]) {
      const { frames: [image] } = await decodeDicom(bytes, { channels: 1, maxPixels: MAX_PIXELS, window: window })
      const differing = hu.filter((value, i) => image.pixels[i] !== Math.round(windowValue(value, window))).length
      t.equal(differing, 0, `${name}, window ${window.center}/${window.width}: ${hu.length} pixels equal`)
    }
  }
})

t.test('the linear VOI function follows PS3.3 C.11.2.1.2.1 (hand-computed values)', async (t) => {
  const window = { center: 40, width: 400 }
  t.equal(windowValue(-160, window), 0, 'at and below c - 0.5 - (w - 1)/2 = -160 -> 0')
  t.equal(windowValue(239.5, window), 255, 'at the top of the ramp')
  t.equal(windowValue(240, window), 255, 'above c - 0.5 + (w - 1)/2 = 239 -> 255')
  t.equal(Math.round(windowValue(40, window) * 1000) / 1000, 127.82, '((40 - 39.5)/399 + 0.5) x 255')
  t.equal(windowValue(-159, window) > 0, true, 'just above the bottom of the ramp is not black')
  t.equal(Math.round(windowValue(40, window, 'LINEAR_EXACT') * 1000) / 1000, 127.5)
  t.equal(windowValue(40, window, 'SIGMOID'), 127.5)
})

t.test('MONOCHROME1, 8-bit unsigned with a rescale, window from the file (windowSource file), 3 channels', async (t) => {
  const bytes = writeDicom({
    rows: 1, columns: 4, bitsAllocated: 8, signed: false, photometric: 'MONOCHROME1', rescaleIntercept: 0,
    window: { center: 100, width: 101 }, values: [0, 50, 100, 200]
  })
  const decoded = await decodeDicom(bytes, { channels: 3, maxPixels: MAX_PIXELS, windowSource: 'file' })
  t.same(decoded.window, { center: 100, width: 101, source: 'file' })
  // 50 -> ((50 - 99.5)/100 + 0.5) x 255 = 1.275 -> 1; 100 -> 128.775 -> 129; then inverted for MONOCHROME1.
  t.same([...decoded.frames[0].pixels], [255, 255, 255, 254, 254, 254, 126, 126, 126, 0, 0, 0])
})

t.test('signed 12-bit stored in 16 with slope and intercept; bits above HighBit are ignored', async (t) => {
  const bytes = writeDicom({
    rows: 2, columns: 2, bitsAllocated: 16, bitsStored: 12, highBit: 11, signed: true,
    rescaleSlope: 2, rescaleIntercept: -100, values: [-2048, 2047, 0xf000 | 5, -1]
  })
  const { frames } = await readModalityFrames(bytes, MAX_PIXELS)
  t.same([...frames[0]], [-2048 * 2 - 100, 2047 * 2 - 100, 5 * 2 - 100, -2 - 100])
})

t.test('deflated explicit VR little endian reads like the uncompressed file', async (t) => {
  const spec = { rows: 2, columns: 2, bitsAllocated: 16 as const, signed: true, rescaleIntercept: -1024, values: [0, 1000, 1064, 3000] }
  const plain = await readModalityFrames(writeDicom(spec), MAX_PIXELS)
  const deflated = await readModalityFrames(writeDicom({ ...spec, transferSyntaxUid: '1.2.840.10008.1.2.1.99' }), MAX_PIXELS)
  t.same([...deflated.frames[0]], [...plain.frames[0]])
  t.same([...plain.frames[0]], [-1024, -24, 40, 1976])
})

t.test('multi-frame objects give one image per frame', async (t) => {
  const bytes = writeDicom({ rows: 1, columns: 2, frames: 3, bitsAllocated: 16, signed: false, values: [0, 0, 500, 500, 1000, 1000] })
  const decoded = await decodeDicom(bytes, { channels: 1, maxPixels: MAX_PIXELS, window: { center: 500, width: 1000 } })
  t.same(decoded.frames.map((frame) => [...frame.pixels]), [[0, 0], [128, 128], [255, 255]])
  await t.rejects(decodeDicom(bytes, { channels: 1, maxPixels: MAX_PIXELS, maxFrames: 2 }), { code: 'TOO_MANY_FRAMES', statusCode: 422 })
})

t.test('decodeImage dispatches DICOM by its preamble; multi-frame objects are refused there', async (t) => {
  const bytes = await dicom('ct-small-pydicom.dcm')
  const viaDispatch = await decodeImage(bytes, { channels: 3, maxPixels: MAX_PIXELS, dicomWindow: { center: 300, width: 1500 } })
  const direct = await decodeDicom(bytes, { channels: 3, maxPixels: MAX_PIXELS, window: { center: 300, width: 1500 } })
  t.same([viaDispatch.width, viaDispatch.height, viaDispatch.channels], [128, 128, 3])
  t.ok(viaDispatch.pixels.equals(direct.frames[0].pixels))
  const abdomen = await decodeImage(bytes, { channels: 3, maxPixels: MAX_PIXELS })
  t.notOk(abdomen.pixels.equals(viaDispatch.pixels), 'the configured default window changes the pixels')
  t.same((await decodeDicomInstance(bytes, { channels: 1, maxPixels: MAX_PIXELS })).identifiers.studyInstanceUid, reference['ct-small-pydicom.dcm'].studyInstanceUid)
  const multiFrame = writeDicom({ rows: 1, columns: 1, frames: 2, bitsAllocated: 8, signed: false, values: [1, 2] })
  await t.rejects(decodeImage(multiFrame, { channels: 1, maxPixels: MAX_PIXELS }), { code: 'MULTI_FRAME_DICOM', statusCode: 422 })
})

t.test('patient name, ID and birth date never appear in the result', async (t) => {
  const decoded = await decodeDicom(writeDicom({ rows: 1, columns: 1, bitsAllocated: 8, signed: false, values: [7] }), { channels: 1, maxPixels: MAX_PIXELS })
  t.same(decoded.identifiers, SYNTHETIC_UIDS)
  const text = JSON.stringify({ ...decoded, frames: decoded.frames.map((f) => ({ ...f, pixels: f.pixels.toString('latin1') })) })
  for (const value of Object.values(SYNTHETIC_PATIENT)) t.notMatch(text, value)
})

t.test('typed errors for what cannot be decoded', async (t) => {
  const jpegExtended = writeDicom({
    transferSyntaxUid: '1.2.840.10008.1.2.4.51', rows: 8, columns: 8, bitsAllocated: 16, signed: false,
    encapsulatedFragment: Buffer.from([0xff, 0xd8, 0xff, 0xd9])
  })
  await t.rejects(decodeDicom(jpegExtended, { channels: 1, maxPixels: MAX_PIXELS }),
    { code: 'UNSUPPORTED_TRANSFER_SYNTAX', statusCode: 415, message: /1\.2\.840\.10008\.1\.2\.4\.51 \(JPEG Extended \(12-bit\)\)/ })
  const brokenJpeg = writeDicom({
    transferSyntaxUid: '1.2.840.10008.1.2.4.50', rows: 8, columns: 8, bitsAllocated: 8, signed: false,
    encapsulatedFragment: Buffer.from([0xff, 0xd8, 0xff, 0xd9])
  })
  await t.rejects(decodeDicom(brokenJpeg, { channels: 1, maxPixels: MAX_PIXELS }), { code: 'CORRUPT_DICOM', statusCode: 422 })
  const rgb = writeDicom({ rows: 1, columns: 1, bitsAllocated: 8, signed: false, samplesPerPixel: 3, photometric: 'RGB', values: [1, 2, 3] })
  await t.rejects(decodeDicom(rgb, { channels: 3, maxPixels: MAX_PIXELS }), { code: 'UNSUPPORTED_DICOM_IMAGE', statusCode: 415 })
  const real = await dicom('ct1-unc-explicit-little-endian.dcm')
  await t.rejects(decodeDicom(real.subarray(0, real.length - 1000), { channels: 1, maxPixels: MAX_PIXELS }), { code: 'CORRUPT_DICOM', statusCode: 422 })
  await t.rejects(decodeDicom(real.subarray(0, 300), { channels: 1, maxPixels: MAX_PIXELS }), { code: 'CORRUPT_DICOM', statusCode: 422 })
  await t.rejects(decodeDicom(real, { channels: 1, maxPixels: 512 * 511 }), { code: 'IMAGE_TOO_LARGE', statusCode: 422 })
  const jpegLs = await dicom('ct1-unc-jpeg-ls.dcm')
  const damaged = Buffer.from(jpegLs)
  damaged.fill(0x55, jpegLs.length - 60000, jpegLs.length - 1000)
  await t.rejects(decodeDicom(damaged, { channels: 1, maxPixels: MAX_PIXELS }), { code: 'CORRUPT_DICOM', statusCode: 422 })
})
