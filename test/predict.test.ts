import { deflateSync, crc32, gzipSync } from 'node:zlib'
import { readdir, readFile } from 'node:fs/promises'
import t, { type Test } from 'tap'
import sharp, { type Sharp } from 'sharp'
import { Value } from '@sinclair/typebox/value'
import { ErrorSchema } from '../schemas/error.js'
import { FindingSchema } from '../schemas/finding.js'
import { ModelRefSchema } from '../schemas/model.js'
import { PredictionSchema, ProbabilitiesSchema } from '../schemas/prediction.js'
import { build, ctKidneyFiles, ctKidneyImage, fileUpload, multipart } from './helper.js'
import { writeDicom } from './helpers/dicom-writer.js'

function pngChunk (type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A valid-looking PNG of a few dozen bytes whose header claims `width` x `height` grey pixels. */
function pngClaiming (width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.set([8, 0, 0, 0, 0], 8)
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(1024))), pngChunk('IEND', Buffer.alloc(0))])
}

function checkPrediction (t: Test, body: any): void {
  t.ok(Value.Check(PredictionSchema, [ModelRefSchema, ProbabilitiesSchema, FindingSchema], body), 'matches the Prediction schema')
  t.equal(body.classIndex, body.prediction === 'Stone' ? 1 : 0, 'Normal = 0, Stone = 1')
  t.ok(Math.abs(body.probabilities.Normal + body.probabilities.Stone - 1) < 1e-6, 'probabilities sum to 1')
  t.equal(body.confidence, body.probabilities[body.prediction], 'confidence is the predicted class probability')
  t.equal(body.prediction === 'Stone', body.probabilities.Stone >= body.threshold, 'decided by the threshold')
  t.ok(body.recommendations.length > 0)
  t.match(body.disclaimer, /not a diagnosis/)
}

t.test('real Normal and Stone slices, 384 px and untouched originals, give valid predictions', async (t) => {
  const app = await build(t)
  const files = [
    ...await ctKidneyFiles('test/normal', 2), ...await ctKidneyFiles('test/stone', 2),
    ...await ctKidneyFiles('originals/normal', 2), ...await ctKidneyFiles('originals/stone', 2)
  ]
  for (const file of files) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await readFile(file)) })
    t.equal(res.statusCode, 200, file)
    checkPrediction(t, res.json())
    for (const stage of ['decode', 'preprocess', 'inference']) {
      t.match(res.headers['server-timing'], new RegExp(`(^|, )${stage};dur=[\\d.]+`), `Server-Timing has ${stage}`)
    }
  }
})

t.test('PNG and JPEG of the same slice give the same class and probabilities', async (t) => {
  const app = await build(t)
  for (const folder of ['test/normal', 'test/stone']) {
    const jpeg = await ctKidneyImage(folder, 3)
    const png = await sharp(jpeg).png().toBuffer()
    const fromJpeg = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })).json()
    const fromPng = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(png, 'slice.png', 'image/png') })).json()
    t.equal(fromPng.prediction, fromJpeg.prediction, folder)
    t.ok(Math.abs(fromPng.probabilities.Stone - fromJpeg.probabilities.Stone) < 1e-6, 'same probability')
  }
})

t.test('greyscale, RGB, RGBA, 16-bit PNG and EXIF-rotated JPEG are all accepted', async (t) => {
  const app = await build(t)
  const jpeg = await ctKidneyImage('originals/stone', 1)
  const variants: Record<string, Buffer> = {
    'RGB JPEG original': jpeg,
    'greyscale JPEG': await sharp(jpeg).grayscale().jpeg().toBuffer(),
    'RGBA PNG': await sharp(jpeg).ensureAlpha(0.8).png().toBuffer(),
    '16-bit PNG': await sharp(jpeg).grayscale().toColourspace('grey16').png().toBuffer(),
    'EXIF-rotated JPEG': await sharp(jpeg).rotate(270).withMetadata({ orientation: 6 }).jpeg().toBuffer()
  }
  const upright = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })).json()
  for (const [name, bytes] of Object.entries(variants)) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes) })
    t.equal(res.statusCode, 200, name)
    checkPrediction(t, res.json())
  }
  const rotated = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(variants['EXIF-rotated JPEG']) })).json()
  t.ok(Math.abs(rotated.probabilities.Stone - upright.probabilities.Stone) < 0.05,
    'EXIF orientation is applied: the rotated file reads like the upright one')
})

t.test('a compressed request body (Content-Encoding) is refused as such, on /predict, /predict/batch and STOW-RS', async (t) => {
  const app = await build(t)
  const jpeg = await ctKidneyImage('test/stone', 0)
  const gzipped = (url: string, form: ReturnType<typeof multipart>, contentType = form.headers['content-type']) =>
    app.inject({ method: 'POST', url, payload: gzipSync(form.payload), headers: { ...form.headers, 'content-type': contentType, 'content-encoding': 'gzip' } })
  // On the old code: 400 MALFORMED_MULTIPART, and 'the boundary never occurs' from STOW-RS, for a well-formed body.
  for (const res of [await gzipped('/predict', fileUpload(jpeg)), await gzipped('/predict/batch', multipart([{ name: 'files', filename: 'a.jpg', data: jpeg }])),
    await gzipped('/studies', multipart([]), 'multipart/related; type="application/dicom"; boundary=x')]) {
    t.match([res.statusCode, res.json().code, res.json().message], [415, 'UNSUPPORTED_MEDIA_TYPE', /Content-Encoding .* send it uncompressed/])
  }
  const identity = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg), headers: { ...fileUpload(jpeg).headers, 'content-encoding': 'identity' } })
  t.equal(identity.statusCode, 200, 'Content-Encoding: identity is no encoding')
})

t.test('a PNG whose chunk CRC does not match is refused: a damaged IHDR decoded as what it said', async (t) => {
  const app = await build(t)
  const png = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().png().toBuffer()
  const intact = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(png, 'slice.png', 'image/png') })
  t.equal(intact.json().prediction, 'Stone')
  // IHDR's height (bytes 20-23) cut to 180 rows, its CRC left as it was: on the old code 200, the rows with the
  // stone gone, Normal.
  const shorter = Buffer.from(png)
  shorter.writeUInt32BE(180, 20)
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(shorter, 'slice.png', 'image/png') })
  t.match([res.statusCode, res.json().code], [422, 'CORRUPT_IMAGE'], 'a height that does not match its CRC')
})

t.test('a blank image (one grey level where the image is) is refused, not answered Normal with high confidence', async (t) => {
  const app = await build(t)
  const post = async (bytes: Buffer, name: string): Promise<{ status: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, name) })
    return { status: res.statusCode, body: res.json() }
  }
  const solid = (width: number, height: number, grey: number): Sharp =>
    sharp({ create: { width, height, channels: 3, background: { r: grey, g: grey, b: grey } } })
  // On the old code every one of these was 200: Normal, P(Stone) 0.0000-0.02, confidence band high.
  const blank: Record<string, Buffer> = {
    'black PNG 512x512': await solid(512, 512, 0).png().toBuffer(),
    'white JPEG 512x512 (JPEG noise at the edges of its blocks)': await solid(512, 512, 255).jpeg({ quality: 70 }).toBuffer(),
    'grey JPEG 600x200 (a wide image: the black letterbox bands are not its content)': await solid(600, 200, 90).jpeg().toBuffer(),
    'white 4000x1 line': await solid(4000, 1, 255).png().toBuffer(),
    'CT slice of air alone (-1000 HU, black in the soft-tissue window)': writeDicom({ rows: 64, columns: 64, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: Array(64 * 64).fill(24) })
  }
  for (const [name, bytes] of Object.entries(blank)) {
    const { status, body } = await post(bytes, name.startsWith('CT') ? 'air.dcm' : 'blank')
    t.match([status, body.code, body.message], [422, 'BLANK_IMAGE', /one grey level throughout .* nothing to classify/], name)
  }
  // A bright spot of 3x3 pixels on black is content: it is classified, whatever the model makes of it.
  const dot = await solid(512, 512, 0).composite([{ input: await solid(3, 3, 255).png().toBuffer(), left: 300, top: 260 }]).png().toBuffer()
  t.equal((await post(dot, 'dot.png')).status, 200, 'a 3x3 bright spot on black')
  const slice = await post(await ctKidneyImage('test/normal', 0), 'slice.jpg')
  t.equal(slice.status, 200, 'a real slice')
})

t.test('a 16-bit greyscale PNG of raw values (no window) is refused; one widened from 8 bits is read as the 8-bit image', async (t) => {
  const app = await build(t)
  const { data: grey, info } = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
  const sixteenBit = async (value: (g: number) => number): Promise<Buffer> => await sharp(Uint16Array.from(grey, value),
    { raw: { width: info.width, height: info.height, channels: 1, premultiplied: false } }).toColourspace('grey16').png().toBuffer()
  const eightBit = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await sharp(grey, { raw: { ...info, channels: 1 } }).png().toBuffer(), 'slice.png', 'image/png') })).json()
  const widened = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await sixteenBit((g) => g * 257), 'slice.png', 'image/png') })).json()
  t.equal(widened.probabilities.Stone, eightBit.probabilities.Stone, 'widened x257: the answer of the 8-bit image')
  // 12-bit stored values, and a DeepLesion-like HU + 32768 band: on the old code both 200, Normal with high confidence.
  for (const [name, value] of Object.entries({ '12-bit values': (g: number) => g * 16, 'HU + 32768': (g: number) => 32768 - 1000 + g * 8 })) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await sixteenBit(value), 'slice.png', 'image/png') })
    t.equal(res.statusCode, 415, name)
    t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', message: /16-bit greyscale PNG holds raw values .* send the DICOM file/ }, name)
  }
})

t.test('a JPEG whose scan ends early (a copy padded with zeros) is refused, not classified as the grey it decodes to', async (t) => {
  const app = await build(t)
  for (const folder of ['test/stone', 'test/normal']) {
    for (const index of [0, 1]) {
      const jpeg = await ctKidneyImage(folder, index)
      // Cut at half and padded with zeros to its full size, EOI kept: the tail of a preallocated file whose copy
      // stopped. libjpeg decodes it with a warning ("Corrupt JPEG data: premature end of data segment").
      const half = jpeg.length >> 1
      const zeroTail = Buffer.concat([jpeg.subarray(0, half), Buffer.alloc(jpeg.length - 2 - half), jpeg.subarray(-2)])
      const intact = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })
      t.equal(intact.statusCode, 200, `${folder} #${index}: the intact file is classified`)
      const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(zeroTail) })
      t.equal(res.statusCode, 422, `${folder} #${index}, zero tail: refused`)
      t.equal(res.json().code, 'CORRUPT_IMAGE', `${folder} #${index}, zero tail`)
    }
  }
  t.equal((await readdir(app.config.uploadDir)).length, 4, 'only the four intact files were kept')
})

t.test('a JPEG with stray bytes between two header segments (a warning about nothing in its pixels) is classified as the intact file', async (t) => {
  const app = await build(t)
  const jpeg = await ctKidneyImage('test/stone', 0)
  // Two bytes before the DQT segment: libjpeg warns '2 extraneous bytes before marker 0xdb', and the refusal of
  // JPEGs that warn (a scan cut short) refused this one too, 422 CORRUPT_IMAGE on the old code.
  const at = jpeg.indexOf(Buffer.from([0xff, 0xdb]))
  const gap = Buffer.concat([jpeg.subarray(0, at), Buffer.from([0x12, 0x34]), jpeg.subarray(at)])
  const intact = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })).json()
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(gap) })
  t.equal(res.statusCode, 200, res.statusCode === 200 ? 'classified' : res.body)
  t.equal(res.json().probabilities?.Stone, intact.probabilities.Stone, 'with the intact file\'s answer')
  // The same gap with the scan cut short and zero-padded still warns of the scan: refused.
  const half = gap.length >> 1
  const both = Buffer.concat([gap.subarray(0, half), Buffer.alloc(gap.length - 2 - half), gap.subarray(-2)])
  t.match((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(both) })).json(), { code: 'CORRUPT_IMAGE' }, 'a gap and a scan cut short')
})

t.test('a file part without a filename (.NET MultipartFormDataContent, curl -F \'file=<x\') is read as the file', async (t) => {
  const app = await build(t)
  const jpeg = await ctKidneyImage('test/stone', 0)
  const named = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })).json()
  for (const contentType of [undefined, 'image/jpeg']) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ name: 'file', data: jpeg, contentType }]) })
    t.equal(res.statusCode, 200, `no filename, Content-Type ${contentType ?? 'none'} (on the old code: 400 VALIDATION_ERROR)`)
    t.equal(res.json().probabilities.Stone, named.probabilities.Stone, 'the same answer as with a filename')
  }
  const batch = await app.inject({ method: 'POST', url: '/predict/batch', ...multipart([{ name: 'files', data: jpeg }, { name: 'files', data: jpeg }]) })
  t.equal(batch.statusCode, 200, 'the batch route too')
  t.equal(batch.json().summary.succeeded, 2)
  const text = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ name: 'file', data: 'not an image' }]) })
  t.equal(text.json().code, 'UNSUPPORTED_MEDIA_TYPE', 'text in the field "file" is a file that is not an image')
})

t.test('every error code, each triggered by a real input, with a typed body and nothing stored', async (t) => {
  const app = await build(t, { config: { maxFileBytes: 200_000, maxPixels: 40_000_000 } })
  const jpeg = await ctKidneyImage('originals/normal', 0)
  const cases: Array<{ name: string, request: ReturnType<typeof multipart>, status: number, code: string }> = [
    { name: 'no file field', request: multipart([{ name: 'note', data: 'hello' }]), status: 400, code: 'NO_FILE' },
    { name: 'empty file', request: fileUpload(Buffer.alloc(0)), status: 400, code: 'NO_FILE' },
    { name: 'oversized body', request: fileUpload(Buffer.concat([jpeg, Buffer.alloc(300_000)])), status: 413, code: 'FILE_TOO_LARGE' },
    { name: 'text file named .jpg', request: fileUpload(Buffer.from('not an image at all\n'), 'x.jpg', 'image/jpeg'), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'GIF', request: fileUpload(await sharp(jpeg).resize(128).gif().toBuffer(), 'x.png', 'image/png'), status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'truncated JPEG', request: fileUpload(jpeg.subarray(0, Math.floor(jpeg.length * 0.6))), status: 422, code: 'CORRUPT_IMAGE' },
    { name: 'PNG claiming 100000x100000', request: fileUpload(pngClaiming(100_000, 100_000), 'x.png', 'image/png'), status: 422, code: 'IMAGE_TOO_LARGE' }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...c.request })
    t.equal(res.statusCode, c.status, c.name)
    const body = res.json()
    t.ok(Value.Check(ErrorSchema, body), `${c.name}: typed body`)
    t.equal(body.code, c.code, c.name)
    t.equal(body.statusCode, c.status)
    t.notMatch(res.body, /\/work\/|node_modules|\n\s+at /, `${c.name}: no path or stack trace`)
  }
  const noBody = await app.inject({ method: 'POST', url: '/predict' })
  t.equal(noBody.json().code, 'NO_FILE', 'a POST without a body')
  t.same(await readdir(app.config.uploadDir), [], 'rejected uploads leave nothing on disk')
})

t.test('a form field named after a property every JavaScript object has is refused, and the message says which names', async (t) => {
  // @fastify/multipart refuses every name found on Object.prototype; the message named only two of them, so a
  // caller whose field was "toString" or "hasOwnProperty" was told its field names were "__proto__" or "constructor".
  const app = await build(t)
  const slice = await ctKidneyImage('test/normal')
  for (const name of ['toString', 'hasOwnProperty', '__proto__']) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...multipart([{ name: 'file', filename: 'a.jpg', contentType: 'image/jpeg', data: slice }, { name, data: 'x' }]) })
    t.equal(res.statusCode, 400)
    t.equal(res.json().code, 'VALIDATION_ERROR')
    t.match(res.json().message, name, `the message names ${name}`)
  }
})
