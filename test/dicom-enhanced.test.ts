import { readFile } from 'node:fs/promises'
import t from 'tap'
import { decodeDicomInstance, readModalityFrames } from '../inference/dicom/decode-dicom.js'
import { build, fileUpload, SHARED } from './helper.js'
import { element, sequence, text, writeDicom } from './helpers/dicom-writer.js'
import type { FastifyInstance } from 'fastify'

const ENHANCED_CT = '1.2.840.10008.5.1.4.1.1.2.1'
const CT1 = await readFile(`${SHARED}/data/dicom/ct1-unc-explicit-little-endian.dcm`)
const { frames: [ct1Hu] } = await readModalityFrames(CT1, 1_000_000)

/** Functional group macros (PS3.3 C.7.6.16.2) as sequences of one item. */
const pixelValueTransformation = (intercept: number, slope = 1): Buffer =>
  sequence(0x0028, 0x9145, [[element(0x0028, 0x1052, 'DS', text(intercept)), element(0x0028, 0x1053, 'DS', text(slope)), element(0x0028, 0x1054, 'LO', text('HU'))]])
const frameVoiLut = (center: number, width: number): Buffer =>
  sequence(0x0028, 0x9132, [[element(0x0028, 0x1050, 'DS', text(center)), element(0x0028, 0x1051, 'DS', text(width))]])
const planePosition = (z: number): Buffer => sequence(0x0020, 0x9113, [[element(0x0020, 0x0032, 'DS', text(`-250\\-250\\${z}`))]])
const planeOrientation = (): Buffer => sequence(0x0020, 0x9116, [[element(0x0020, 0x0037, 'DS', text('1\\0\\0\\0\\1\\0'))]])
const pixelMeasures = (): Buffer => sequence(0x0028, 0x9110, [[element(0x0018, 0x0050, 'DS', text(5)), element(0x0028, 0x0030, 'DS', text('0.9765\\0.9765'))]])

/** An Enhanced CT Image (explicit VR LE) of CT1-sized frames: no top-level rescale; everything in functional groups. */
function enhancedCt (frames: Array<{ stored: number[], perFrame: Buffer[] }>, shared: Buffer[]): Buffer {
  return writeDicom({
    sopClassUid: ENHANCED_CT, rows: 512, columns: 512, frames: frames.length, bitsAllocated: 16, signed: true,
    values: frames.flatMap((frame) => frame.stored),
    extraElements: [
      sequence(0x5200, 0x9229, [shared]),
      sequence(0x5200, 0x9230, frames.map((frame) => frame.perFrame))
    ]
  })
}

async function predict (app: FastifyInstance, bytes: Buffer): Promise<{ statusCode: number, body: any }> {
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'enhanced.dcm', 'application/dicom') })
  return { statusCode: res.statusCode, body: res.json() }
}

t.test('a one-frame Enhanced CT with its rescale and a lung window in the Shared Functional Groups reads as CT1', async (t) => {
  const app = await build(t)
  const reference = await predict(app, CT1)
  const stored = Array.from(ct1Hu, (hu) => hu + 1024)
  const bytes = enhancedCt([{ stored, perFrame: [planePosition(-120)] }], [pixelValueTransformation(-1024), frameVoiLut(-600, 1500), planeOrientation(), pixelMeasures()])
  const { frames: [hu] } = await readModalityFrames(bytes, 1_000_000)
  t.equal(hu.filter((value, i) => value !== ct1Hu[i]).length, 0, 'every HU from the shared rescale equals CT1\'s')
  const answer = await predict(app, bytes)
  t.equal(answer.statusCode, 200)
  t.same(answer.body.probabilities, reference.body.probabilities, `P(Stone) ${answer.body.probabilities.Stone}: CT1's, rescale applied, lung window ignored`)
  t.notOk('frames' in answer.body, 'a single frame keeps the single-slice answer')
})

t.test('a multi-frame Enhanced CT: every frame classified, per-frame rescale and position, the object as its most positive frame', async (t) => {
  const app = await build(t)
  const reference = await predict(app, CT1)
  const stored = Array.from(ct1Hu, (hu) => hu + 1024)
  const shifted = Array.from(ct1Hu, (hu) => hu + 2024) // the same HU through a per-frame intercept of -2024
  const air = new Array<number>(512 * 512).fill(24) // -1000 HU everywhere
  const bytes = enhancedCt([
    { stored, perFrame: [planePosition(-120), pixelValueTransformation(-1024)] },
    { stored: shifted, perFrame: [planePosition(-115), pixelValueTransformation(-2024)] },
    { stored: air, perFrame: [planePosition(-110), pixelValueTransformation(-1024)] }
  ], [planeOrientation(), pixelMeasures()])
  const answer = await predict(app, bytes)
  t.equal(answer.statusCode, 200, JSON.stringify(answer.body.message))
  const frames = answer.body.frames as Array<{ frame: number, slicePosition: number, probabilities: { Stone: number }, prediction: string }>
  t.same(frames.map((f) => [f.frame, f.slicePosition]), [[1, -120], [2, -115], [3, -110]])
  t.same(frames[0].probabilities, reference.body.probabilities, 'frame 1: CT1\'s answer')
  t.same(frames[1].probabilities, reference.body.probabilities, 'frame 2: the same HU through its own rescale, the same answer')
  t.not(frames[2].probabilities.Stone, reference.body.probabilities.Stone, `frame 3 (air) has its own answer: P(Stone) ${frames[2].probabilities.Stone}`)
  const most = frames.reduce((best, frame) => frame.probabilities.Stone > best.probabilities.Stone ? frame : best)
  t.same(answer.body.probabilities, most.probabilities, `the object answers as its most probably Stone frame (frame ${most.frame})`)
  t.equal(answer.body.prediction, frames.some((frame) => frame.prediction === 'Stone') ? 'Stone' : 'Normal', 'Stone when any frame is')
  t.equal(answer.body.dicom.sopInstanceUid, '1.2.826.0.1.3680043.8.498.3')

  const one = await build(t, { config: { dicomMaxFrames: 1 } })
  t.match(await predict(one, bytes), { statusCode: 422, body: { code: 'MULTI_FRAME_DICOM' } }, 'DICOM_MAX_FRAMES=1 refuses multi-frame objects')
  const two = await build(t, { config: { dicomMaxFrames: 2 } })
  t.match(await predict(two, bytes), { statusCode: 422, body: { code: 'TOO_MANY_FRAMES', message: /3 frames, more than the limit of 2/ } }, 'refused from the header')
})

t.test('a multi-frame object whose frames would not fit where they are decoded is refused from its header', async (t) => {
  const bytes = writeDicom({ rows: 4, columns: 4, frames: 3, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: new Array(48).fill(1064) })
  const decoded = await decodeDicomInstance(bytes, { channels: 1, maxPixels: 16, maxFrames: 3, maxTotalPixels: 48 })
  t.equal(decoded.frames.length, 3, '3 x 16 pixels fit in 48')
  await t.rejects(decodeDicomInstance(bytes, { channels: 1, maxPixels: 16, maxFrames: 3, maxTotalPixels: 47 }),
    { code: 'DICOM_TOO_LARGE', message: /3 frames of 4x4 would decode to more than the 47 pixels/ })
})

t.test('an Enhanced CT frame whose Pixel Value Transformation has an intercept and no slope is 422 CORRUPT_DICOM naming the slope', async (t) => {
  const app = await build(t)
  const stored = Array.from(ct1Hu, (hu) => hu + 1024)
  const interceptOnly = sequence(0x0028, 0x9145, [[element(0x0028, 0x1052, 'DS', text(-1024)), element(0x0028, 0x1054, 'LO', text('HU'))]])
  const bytes = enhancedCt([
    { stored, perFrame: [planePosition(-120), pixelValueTransformation(-1024)] },
    { stored, perFrame: [planePosition(-115), interceptOnly] }
  ], [planeOrientation()])
  // On the old code: 200, the second frame read with slope 1 (the identity standing in for the missing slope).
  t.match(await predict(app, bytes), { statusCode: 422, body: { code: 'CORRUPT_DICOM', message: /Rescale Slope \(0028,1053\) is missing beside its Rescale Intercept \(0028,1052\)/ } })
})
