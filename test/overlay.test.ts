import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import sharp from 'sharp'
import { luminance, VIRIDIS } from '../inference/colour-map.js'
import { evidenceMap, findingsOf } from '../inference/findings.js'
import type { ModelSpec } from '../inference/model-spec.js'
import { renderOverlay } from '../inference/overlay.js'
import { loadConfig } from '../plugins/app/config.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'
import { build, ctKidneyImage, fileUpload, RECORDS_OFF, SHARED } from './helper.js'
import { writeDicom } from './helpers/dicom-writer.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// GET /predictions/{id}/overlay.png and the recorded answer's FHIR report, on the embedded records store.

const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-overlay-records-')))
t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
const RECORDS = { ...RECORDS_OFF, store: 'pglite', dataDir } as const

async function pixels (png: Buffer): Promise<{ data: Buffer, width: number, height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height }
}

const MODEL_INPUT: ModelSpec['input'] = { width: 224, height: 224, channels: 1, layout: 'NHWC', resize: 'contain', scale: 1 / 255, mean: [0], std: [1] }
const SPEC = { input: MODEL_INPUT, classes: ['Normal', 'Stone'], positiveClass: 'Stone' }

/** 14x14 maps [Normal, Stone]: Stone-minus-Normal is -2 everywhere but cell (10, 7), which lies on the image content. */
function peakAtCell10x7 (): { values: Float32Array, dims: [number, number, number] } {
  const values = new Float32Array(2 * 196)
  for (let k = 0; k < 196; k++) values[196 + k] = -2
  values[196 + 7 * 14 + 10] = 6
  return { values, dims: [2, 14, 14] }
}

function brightest (image: { data: Buffer, width: number, height: number }): { x: number, y: number } {
  let best = { x: -1, y: -1, value: -1 }
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const j = (y * image.width + x) * 3
      const value = image.data[j] + image.data[j + 1] + image.data[j + 2]
      if (value > best.value) best = { x, y, value }
    }
  }
  return best
}

t.test('viridis never gets darker as the evidence grows, so the heatmap reads in greyscale print', async (t) => {
  const steps = VIRIDIS.map(luminance)
  t.ok(steps.every((value, i) => i === 0 || value >= steps[i - 1]), 'luminance never falls over the 256 entries')
  t.ok(steps.filter((value, i) => i > 0 && value > steps[i - 1]).length >= 250, 'and rises at nearly every step (8-bit rounding repeats a few)')
  t.ok(steps[255] - steps[0] > 150, `from ${steps[0].toFixed(0)} to ${steps[255].toFixed(0)}`)
})

t.test('an overlay decoded after SLOW_UPLOAD_AFTER_MS is not a slow upload: a request without a body never is', async (t) => {
  // A GET never reads its request stream, so its end came only after the answer: past SLOW_UPLOAD_AFTER_MS the overlay
  // counted as a slow upload, and its decoded image (8 bytes a pixel: 1.2 MB for a 384x384 slice) did not fit the slow
  // uploads' 1 MB share: 413 REQUEST_TOO_LARGE 'arriving slowly' on the old code.
  const MB = 1024 * 1024
  const app = await build(t, { config: { records: RECORDS, maxFileBytes: MB, maxInflightBytes: 64 * MB, slowUploads: { afterMs: 1, maxBytes: MB } } })
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone', 0)) })).json()
  const overlay = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png` })
  t.equal(overlay.statusCode, 200, overlay.statusCode === 200 ? 'drawn' : overlay.body)
  t.equal(app.inflight.slow, 0, 'nothing counted as slow')
})

t.test('a Stone slice: overlay at the uploaded size, boxes where the answer says, heatmap only where asked', async (t) => {
  const app = await build(t, { config: { records: RECORDS } })
  const bytes = await ctKidneyImage('originals/stone', 0)
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes) })).json()
  t.equal(answer.prediction, 'Stone')
  const stored = (await app.inject({ method: 'GET', url: `/predictions/${answer.id}` })).json()
  t.same(stored.findings, answer.findings, 'the recorded answer keeps its findings')

  const full = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png` })
  t.equal(full.statusCode, 200)
  t.equal(full.headers['content-type'], 'image/png')
  const boxesOnly = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png?heatmap=false` })
  t.equal(boxesOnly.statusCode, 200)
  const [withHeatmap, plain] = await Promise.all([pixels(full.rawPayload), pixels(boxesOnly.rawPayload)])
  const { width, height } = await sharp(bytes).metadata()
  t.same([plain.width, plain.height], [width, height], 'the uploaded size')
  const slice = await sharp(bytes).greyscale().raw().toBuffer()
  const { box } = answer.findings[0]
  const at = (image: { data: Buffer, width: number }, x: number, y: number): number[] => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3))
  t.same(at(plain, box.x, box.y + 1), [255, 255, 255], 'the box edge is white')
  t.same(at(plain, box.x - 1, box.y + 1), [0, 0, 0], 'with black just outside it')
  // far from the box, the boxes-only overlay is the slice itself
  const [fx, fy] = [box.x > (width as number) / 2 ? 5 : (width as number) - 5, box.y > (height as number) / 2 ? 5 : (height as number) - 5]
  t.same(at(plain, fx, fy), [slice[fy * (width as number) + fx], slice[fy * (width as number) + fx], slice[fy * (width as number) + fx]], 'elsewhere: the grey slice')
  const centre = [box.x + Math.floor(box.width / 2), box.y + Math.floor(box.height / 2)] as const
  const [r, g, b] = at(withHeatmap, ...centre)
  t.ok(!(r === g && g === b), `the heatmap colours the top finding's centre (${r}, ${g}, ${b})`)
  t.same(at(plain, ...centre).slice(0, 1), [slice[centre[1] * (width as number) + centre[0]]], 'without heatmap the centre is grey as on the slice')

  const fhir = await app.inject({ method: 'GET', url: `/predictions/${answer.id}`, headers: { accept: 'application/fhir+json' } })
  t.equal(fhir.statusCode, 200)
  t.match(fhir.headers['content-type'], /^application\/fhir\+json/)
  const report = fhir.json()
  t.ok(fhirR4Validator('DiagnosticReport')(report), 'a valid R4 DiagnosticReport')
  t.equal(report.id, answer.id)
  t.equal(report.issued, stored.createdAt, 'issued when the answer was given')
  t.ok(JSON.stringify(report).includes(`x=${box.x} y=${box.y} width=${box.width} height=${box.height}`), 'with the top finding')

  t.equal((await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png?heatmap=maybe` })).json().code, 'VALIDATION_ERROR')
  const unknown = await app.inject({ method: 'GET', url: '/predictions/00000000-0000-4000-8000-000000000000/overlay.png' })
  t.same([unknown.statusCode, unknown.json().code], [404, 'PREDICTION_NOT_FOUND'])
  // retention removes the upload (here: a sweep two days on); the record stays, the overlay cannot be drawn
  t.ok(await app.uploads.sweep(Date.now() + 2 * 86_400_000) >= 1)
  const gone = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png` })
  t.same([gone.statusCode, gone.json().code], [404, 'UPLOAD_NOT_KEPT'])
  t.match(gone.json().message, /no longer kept/)
  await app.close()
})

t.test('DICOM: the overlay is Columns x Rows; a Normal answer has no boxes', async (t) => {
  const app = await build(t, { config: { records: RECORDS } })
  const dicom = await readFile(join(SHARED, 'data/dicom/ct-small-pydicom.dcm'))
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'ct.dcm', 'application/dicom') })).json()
  const res = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png` })
  t.equal(res.statusCode, 200)
  const { width, height } = await pixels(res.rawPayload)
  t.same([width, height], [128, 128], 'CT_small.dcm is 128 x 128')
  const normal = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/normal', 0)) })).json()
  t.same([normal.prediction, normal.findings], ['Normal', []])
  t.equal((await app.inject({ method: 'GET', url: `/predictions/${normal.id}/overlay.png` })).statusCode, 200)
  await app.close()
})

t.test('a multi-frame DICOM object: the overlay draws the frame its answer was given for', async (t) => {
  const app = await build(t, { config: { records: RECORDS } })
  const stone = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
  const { width, height } = stone.info
  // A multi-frame secondary capture (8-bit display pixels): a black frame, then the stone slice.
  const dicom = writeDicom({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7.2', modality: 'OT', rows: height, columns: width, frames: 2, bitsAllocated: 8, signed: false,
    values: [...new Array(width * height).fill(0), ...stone.data]
  })
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'series.dcm', 'application/dicom') })).json()
  t.same(answer.frames.map((f: any) => f.prediction), ['Normal', 'Stone'])
  t.equal(answer.probabilities.Stone, answer.frames[1].probabilities.Stone, 'the answer is the second frame\'s')
  const res = await app.inject({ method: 'GET', url: `/predictions/${answer.id as string}/overlay.png?heatmap=false` })
  t.equal(res.statusCode, 200, 'drawn (on the old code: 422 MULTI_FRAME_DICOM, "only single-frame images are classified")')
  const plain = await pixels(res.rawPayload)
  t.same([plain.width, plain.height], [width, height])
  // Outside the boxes' rims (a few hundred pixels) the boxes-only overlay is the frame itself.
  let differing = 0
  for (let i = 0; i < width * height; i++) if (plain.data[i * 3] !== stone.data[i]) differing++
  t.ok(differing < 0.02 * width * height, `the second frame's pixels (${differing} of ${width * height} differ)`)
  await app.close()
})

t.test('the overlay of one frame of a multi-frame object decodes and charges that frame only', async (t) => {
  // Six frames, the stone slice last; a budget of 4 MiB takes the upload and its six decoded frames, and one frame's
  // overlay (8 bytes a pixel: 1.2 MB), not six (7.1 MB): on the old code every frame was decoded and charged for the
  // overlay of one, 413 REQUEST_TOO_LARGE (a 300-frame CT needs 629 MB so, more than the default budget).
  const MiB = 1024 * 1024
  const app = await build(t, { config: { records: RECORDS, maxFileBytes: 2 * MiB, maxInflightBytes: 4 * MiB } })
  const stone = await sharp(await ctKidneyImage('test/stone', 0)).greyscale().raw().toBuffer({ resolveWithObject: true })
  const { width, height } = stone.info
  const dicom = writeDicom({
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7.2', modality: 'OT', rows: height, columns: width, frames: 6, bitsAllocated: 8, signed: false,
    values: [...new Array(5 * width * height).fill(0), ...stone.data]
  })
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'series.dcm', 'application/dicom') })).json()
  t.equal(answer.frames?.length, 6, 'classified, every frame')
  const res = await app.inject({ method: 'GET', url: `/predictions/${answer.id as string}/overlay.png?heatmap=false` })
  t.equal(res.statusCode, 200, res.statusCode === 200 ? 'drawn' : res.body)
  t.same(await pixels(res.rawPayload).then(({ width, height }) => [width, height]), [width, height])
  await app.close()
})

t.test('GET /predictions/{id} and /studies/{uid} choose JSON or FHIR by Accept\'s q, and refuse (406) an Accept naming neither', async (t) => {
  const app = await build(t, { config: { records: RECORDS } })
  const dicom = await readFile(join(SHARED, 'data/dicom/ct-small-pydicom.dcm'))
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'ct.dcm', 'application/dicom') })).json()
  for (const url of [`/predictions/${answer.id}`, `/studies/${answer.dicom.studyInstanceUid}`]) {
    const get = async (accept?: string): Promise<{ status: number, type: string, code?: string }> => {
      const res = await app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } })
      return { status: res.statusCode, type: String(res.headers['content-type']).split(';')[0], code: res.json().code }
    }
    // On the old code every Accept containing the text application/fhir+json got FHIR, q=0 or not, and any other got JSON.
    t.match(await get('application/json, application/fhir+json;q=0.1'), { status: 200, type: 'application/json' }, `${url}: JSON preferred`)
    t.match(await get('application/fhir+json;q=0, application/json'), { status: 200, type: 'application/json' }, `${url}: FHIR refused by q=0`)
    t.match(await get('application/fhir+xml'), { status: 406, code: 'NOT_ACCEPTABLE' }, `${url}: FHIR XML`)
    t.match(await get('text/html'), { status: 406, code: 'NOT_ACCEPTABLE' }, `${url}: HTML`)
    t.match(await get('application/fhir+json'), { status: 200, type: 'application/fhir+json' }, `${url}: FHIR`)
    for (const accept of [undefined, '*/*', 'application/json']) {
      t.match(await get(accept), { status: 200, type: 'application/json' }, `${url}: Accept ${accept ?? '(none)'}`)
    }
  }
  await app.close()
})

t.test('GET /predictions, /audit-events and the overlay honour Accept as the other records routes do: 406 for a type they cannot send, q respected', async (t) => {
  const app = await build(t, { config: { records: RECORDS } })
  const answer = (await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone', 0)) })).json()
  const routes: Array<[string, string]> = [['/predictions', 'application/json'], ['/audit-events', 'application/json'], [`/predictions/${answer.id as string}/overlay.png?heatmap=false`, 'image/png']]
  for (const [url, type] of routes) {
    const get = async (accept?: string): Promise<{ status: number, type: string, code?: string }> => {
      const res = await app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } })
      const contentType = String(res.headers['content-type']).split(';')[0]
      return { status: res.statusCode, type: contentType, code: contentType === 'application/json' && res.statusCode !== 200 ? res.json().code : undefined }
    }
    // On the old code each of these was 200 with its one type, whatever Accept said.
    t.match(await get('text/html'), { status: 406, code: 'NOT_ACCEPTABLE' }, `${url}: HTML`)
    t.match(await get('application/fhir+json'), { status: 406, code: 'NOT_ACCEPTABLE' }, `${url}: FHIR`)
    t.match(await get(`${type};q=0, */*;q=0.5`), { status: 406, code: 'NOT_ACCEPTABLE' }, `${url}: its type refused by q=0`)
    for (const accept of [undefined, '*/*', type, `${type.split('/')[0]}/*`, `text/html, ${type};q=0.1`]) {
      t.match(await get(accept), { status: 200, type }, `${url}: Accept ${accept ?? '(none)'}`)
    }
  }
  await app.close()
})

t.test('with authentication: the overlay follows GET /predictions/{id}\'s rules; not kept uploads are a typed 404', async (t) => {
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: 'alice:alice-key-0123456789abcdef:predict,bob:bob-key-0123456789abcdefgh:predict' }).auth
  const app = await build(t, { config: { records: RECORDS, auth, uploadMaxAgeMs: 0 } })
  const upload = fileUpload(await ctKidneyImage('test/stone', 0))
  const answer = (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': 'alice-key-0123456789abcdef' } })).json()
  const as = async (headers: Record<string, string>): Promise<[number, string]> => {
    const res = await app.inject({ method: 'GET', url: `/predictions/${answer.id}/overlay.png`, headers })
    return [res.statusCode, res.json().code]
  }
  t.same(await as({}), [401, 'UNAUTHORIZED'])
  t.same(await as({ 'x-api-key': 'bob-key-0123456789abcdefgh' }), [404, 'PREDICTION_NOT_FOUND'], 'someone else\'s prediction does not exist for bob')
  t.same(await as({ 'x-api-key': 'alice-key-0123456789abcdef' }), [404, 'UPLOAD_NOT_KEPT'], 'uploads are not kept (UPLOAD_RETENTION=none)')
  await app.close()
})

t.test('renderOverlay: on a letterboxed (wide) image the heatmap\'s peak lies in the box findingsOf gives', async (t) => {
  const cam = peakAtCell10x7()
  const image = { pixels: Buffer.alloc(448 * 224, 40), width: 448, height: 224, channels: 1 as const }
  const findings = findingsOf(evidenceMap(cam.values, [1, 2, 14, 14], 0, 1), { isStone: true, original: image, input: MODEL_INPUT, temperature: 1 })
  t.equal(findings.length, 1)
  const peak = brightest(await pixels(await renderOverlay({ image, cam, findings: [], spec: SPEC, heatmap: true })))
  const { box } = findings[0]
  t.ok(peak.x >= box.x && peak.x < box.x + box.width && peak.y >= box.y && peak.y < box.y + box.height,
    `heatmap peak (${peak.x}, ${peak.y}) in the finding's box ${JSON.stringify(box)}`)
  // cell (10, 7) covers model columns 160-175, rows 112-127; the 448x224 image fills model rows 56-167 at scale 1/2
  t.ok(Math.abs(peak.x - 167.5 * 2) <= 2 && Math.abs(peak.y - (119.5 - 56) * 2) <= 2, 'at the cell centre mapped back through the letterbox')
})

t.test('renderOverlay on an image larger than the heatmap grid: the peak where the cell maps to, boxes exact at full size, edge boxes clipped', async (t) => {
  const cam = peakAtCell10x7()
  // 2048x1024: the heatmap is computed on a 512x256 grid and scaled up 4x by libvips
  const image = { pixels: Buffer.alloc(2048 * 1024, 40), width: 2048, height: 1024, channels: 1 as const }
  const heat = await pixels(await renderOverlay({ image, cam, findings: [], spec: SPEC, heatmap: true }))
  t.same([heat.width, heat.height], [2048, 1024])
  const peak = brightest(heat)
  // cell (10, 7): model column 167.5, row 119.5; the image fills model rows 56-167 at scale 224/2048
  const scale = 2048 / 224
  t.ok(Math.abs(peak.x - 167.5 * scale) <= 8 && Math.abs(peak.y - (119.5 - 56) * scale) <= 8,
    `peak (${peak.x}, ${peak.y}) within two grid steps of the cell centre mapped back (${167.5 * scale}, ${63.5 * scale})`)

  const findings = [
    { box: { x: 1000, y: 500, width: 40, height: 30 }, score: 0.9 },
    { box: { x: 0, y: 0, width: 2048, height: 1024 }, score: 0.5 }
  ]
  const boxes = await pixels(await renderOverlay({ image, cam, findings, spec: SPEC, heatmap: false }))
  const at = (x: number, y: number): number[] => Array.from(boxes.data.subarray((y * boxes.width + x) * 3, (y * boxes.width + x) * 3 + 3))
  const thickness = Math.round(1024 / 256)
  t.same(at(1000, 510), [255, 255, 255], 'the top box\'s edge is white')
  t.same(at(1000 - thickness, 510), [0, 0, 0], 'with black just outside it')
  t.same(at(1000 + 2 * thickness, 510), [40, 40, 40], 'and the slice inside it')
  t.same(at(0, 2), [255, 255, 255], 'a box on the image\'s edge is drawn, its outer black ring clipped')
  t.same(at(1024, 512), [40, 40, 40], 'elsewhere the slice')
})
