// Chooses the level of the findings' region rule (inference/findings.ts) on VALIDATION slices only:
// ct-kidney val stone slices and yildirim-stones val groups (model/data/yildirim.ts), run through the service's own
// preprocessing (prepareModelInput) and the shipped ONNX (model/evaluation/model-runner.ts), each uploaded as its
// original file and resized (PNG) to 256, 384, 512 and 768 px wide. The old rule is level 0.5. Run it pinned to one core:
//   taskset -c 1 npx tsx bench/findings-rule.ts [--levels 0.5,0.55,...] [--out bench/results/findings-rule-<date>.json]
//
// Criteria, fixed before the first run:
//  (a) resize stability (the figure to maximise): of the slices called Stone at every size, the share whose box
//      count is the same at every size and whose top box, mapped to the original's pixels, overlaps the original
//      upload's top box with IoU >= 0.5 at every size; ct-kidney val and yildirim val pooled.
//  (b) the pointing game on yildirim val (original uploads called Stone): top-box hits must not fall below the old rule's.
//  (c) the median top-box area (share of the image, original uploads called Stone) must not rise above the old
//      rule's, on ct-kidney val nor on yildirim val.
// The chosen level is the one meeting (b) and (c) with the highest (a); on a tie, the lower (nearer the old rule).
// Earlier runs (bench/results/findings-rule-2026-12-04T2007Z.json, ...T2018Z, ...T2025Z) also swept a saddle split
// (an h-maxima watershed keeping peaks apart whose saddle dips more than a depth below the lower one) under the same
// criteria: it moved (a) by 3 slices of 361 at most and tied with no split at the chosen level, so it was not kept.
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { findingsOf, type EvidenceMap, type Finding } from '../inference/findings.js'
import type { Box } from '../inference/letterbox.js'
import { prepareModelInput } from '../inference/preprocess.js'
import { readSliceManifest, sliceFile } from '../model/data/slices.js'
import { readYildirimManifest, readYoloBoxes, YILDIRIM_DIR } from '../model/data/yildirim.js'
import { EvaluationModel } from '../model/evaluation/model-runner.js'
import { pointingGame, type PointedSlice } from '../model/evaluation/pointing-game.js'
import { median, resultsStamp } from './report.js'

const { values: opts } = parseArgs({
  options: {
    levels: { type: 'string', default: '0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9' },
    widths: { type: 'string', default: '256,384,512,768' },
    model: { type: 'string', default: 'model/kidney-stone-cnn.onnx' },
    out: { type: 'string' }
  }
})
/** The rule before this measurement: a region starts halfway from the median to the peak. */
const OLD_LEVEL = 0.5
const levels = [...new Set([OLD_LEVEL, ...opts.levels.split(',').map(Number)])].sort((a, b) => a - b)
const widths = opts.widths.split(',').map(Number)
const IOU_AGREES = 0.5
const MAX_PIXELS = 40_000_000

interface ValSlice { dataset: 'ct-kidney' | 'yildirim', file: string, group: string, stones: Box[] }
interface Seen { size: { width: number, height: number }, probability: number, map: EvidenceMap | undefined }

const model = await EvaluationModel.load(opts.model, 1)
const { spec } = model

const slices: ValSlice[] = [
  ...(await readSliceManifest('ct-kidney')).filter((e) => e.split === 'val' && e.label === 1)
    .map((e): ValSlice => ({ dataset: 'ct-kidney', file: sliceFile(e), group: e.group, stones: [] })),
  ...await Promise.all((await readYildirimManifest()).filter((e) => e.split === 'val').map(async (e): Promise<ValSlice> => {
    const file = path.join(YILDIRIM_DIR, e.image)
    const { width, height } = await sharp(file).metadata()
    return { dataset: 'yildirim', file, group: e.group, stones: await readYoloBoxes(path.join(YILDIRIM_DIR, e.labels), width as number, height as number) }
  }))
]

/** The file itself first, then the slice resized to each width (PNG: the resize alone, no new JPEG loss). */
async function uploadsOf (file: string): Promise<Buffer[]> {
  const bytes = await readFile(file)
  const { width } = await sharp(bytes).metadata()
  const resized = await Promise.all(widths.filter((w) => w !== width).map(async (w) => await sharp(bytes).resize(w).png().toBuffer()))
  return [bytes, ...resized]
}

// every upload of every slice through the service's preprocessing and the model, once; the rules run on the maps
let inferenceMs = 0
let inferences = 0
const seen: Seen[][] = []
for (const slice of slices) {
  const inputs = await Promise.all((await uploadsOf(slice.file)).map(async (upload) =>
    await prepareModelInput(upload, spec, { channels: spec.input.channels, maxPixels: MAX_PIXELS })))
  const started = performance.now()
  const predictions = await model.predictModelInputs(inputs.map((i) => i.pixels))
  inferenceMs += performance.now() - started
  inferences += inputs.length
  seen.push(inputs.map((input, k) => ({ size: input.size, probability: predictions[k].probability, map: predictions[k].stoneMap })))
  if (seen.length % 50 === 0) console.error(`${seen.length} / ${slices.length} slices`)
}
await model.close()

function findingsAt (s: Seen, level: number): Finding[] {
  if (s.map === undefined) throw new Error('the model has no cam output')
  return findingsOf(s.map, { isStone: s.probability >= spec.threshold, original: s.size, input: spec.input, temperature: spec.temperature, level })
}

// the findings of every upload at every level, computed once
const findingsByLevel = new Map(levels.map((level) => [level, seen.map((uploads) => uploads.map((upload) => findingsAt(upload, level)))]))
const findingsOfSlice = (s: number, level: number): Finding[][] => findingsByLevel.get(level)?.[s] ?? []

function iou (a: Box, b: Box): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x)
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y)
  const overlap = Math.max(0, w) * Math.max(0, h)
  return overlap / (a.width * a.height + b.width * b.height - overlap)
}

const scaled = (box: Box, factor: number): Box => ({ x: box.x * factor, y: box.y * factor, width: box.width * factor, height: box.height * factor })
const share = (n: number, of: number): number => of === 0 ? Number.NaN : n / of

function figuresAt (level: number, dataset?: ValSlice['dataset']): Record<string, number> {
  let stoneEverywhere = 0
  let countAgrees = 0
  let topAgrees = 0
  let bothAgree = 0
  const topShares: number[] = []
  const boxCounts: number[] = []
  slices.forEach((slice, s) => {
    if (dataset !== undefined && slice.dataset !== dataset) return
    const [original, ...resized] = seen[s].map((upload, k) => ({ upload, findings: findingsOfSlice(s, level)[k] }))
    if (original.findings.length > 0) {
      const { box } = original.findings[0]
      topShares.push(box.width * box.height / (original.upload.size.width * original.upload.size.height))
      boxCounts.push(original.findings.length)
    }
    if (![original, ...resized].every((u) => u.findings.length > 0)) return
    stoneEverywhere++
    const counts = resized.every((u) => u.findings.length === original.findings.length)
    const tops = resized.every((u) =>
      iou(scaled(u.findings[0].box, original.upload.size.width / u.upload.size.width), original.findings[0].box) >= IOU_AGREES)
    countAgrees += counts ? 1 : 0
    topAgrees += tops ? 1 : 0
    bothAgree += counts && tops ? 1 : 0
  })
  return {
    slicesStoneAtEverySize: stoneEverywhere,
    stable: share(bothAgree, stoneEverywhere),
    countAgrees: share(countAgrees, stoneEverywhere),
    topAgrees: share(topAgrees, stoneEverywhere),
    slicesStoneAtOriginal: topShares.length,
    medianTopBoxShare: median(topShares),
    meanBoxes: boxCounts.reduce((a, b) => a + b, 0) / boxCounts.length
  }
}

function pointingAt (level: number): Record<string, number> {
  const pointed: PointedSlice[] = []
  slices.forEach((slice, s) => {
    const original = seen[s][0]
    if (slice.dataset !== 'yildirim' || original.probability < spec.threshold) return
    pointed.push({ group: slice.group, stones: slice.stones, findings: findingsOfSlice(s, level)[0], image: original.size })
  })
  const g = pointingGame(pointed, { iterations: 1000, seed: 1 })
  return { slicesCalledStone: g.slicesCalledStone, groups: g.groups, topHits: g.topHits, topHit: g.topHit.value, topHitLower: g.topHit.lower, topHitUpper: g.topHit.upper, anyHits: g.anyHits, mirroredTopHits: g.mirroredTopHits, medianTopBoxShare: g.medianTopBoxShare }
}

const rows = levels.map((level) => ({
  level,
  pooled: figuresAt(level),
  ctKidney: figuresAt(level, 'ct-kidney'),
  yildirim: figuresAt(level, 'yildirim'),
  pointing: pointingAt(level)
}))
const old = rows.find((r) => r.level === OLD_LEVEL) as typeof rows[number]
// rows go by rising level: on a tie the lower level stays
const chosen = rows.filter((r) =>
  r.pointing.topHits >= old.pointing.topHits &&
  r.ctKidney.medianTopBoxShare <= old.ctKidney.medianTopBoxShare &&
  r.yildirim.medianTopBoxShare <= old.yildirim.medianTopBoxShare)
  .reduce<typeof rows[number] | undefined>((best, r) => best === undefined || r.pooled.stable > best.pooled.stable ? r : best, undefined)

// the cost of the rule per Stone answer against the inference it follows: old and chosen levels in alternating rounds
const stoneMaps = seen.flat().filter((s) => s.probability >= spec.threshold)
const chosenLevel = chosen?.level ?? OLD_LEVEL
const msPerCall = new Map<number, number[]>()
for (let round = 0; round < 6; round++) {
  for (const level of round % 2 === 0 ? [OLD_LEVEL, chosenLevel] : [chosenLevel, OLD_LEVEL]) {
    const started = performance.now()
    for (const s of stoneMaps) findingsAt(s, level)
    msPerCall.set(level, [...msPerCall.get(level) ?? [], (performance.now() - started) / stoneMaps.length])
  }
}
const cost = { oldMsPerCall: median(msPerCall.get(OLD_LEVEL) ?? []), chosenMsPerCall: median(msPerCall.get(chosenLevel) ?? []), inferenceMsPerImage: inferenceMs / inferences }

const pct = (v: number): string => Number.isNaN(v) ? '-' : `${(100 * v).toFixed(1)} %`
console.log(`${slices.length} val slices (${slices.filter((s) => s.dataset === 'ct-kidney').length} ct-kidney stone, ${slices.filter((s) => s.dataset === 'yildirim').length} yildirim), uploads: original + ${widths.join(', ')} px; ${spec.name} ${spec.version}`)
console.log('level | stable (count+top) pooled | ct-kidney | yildirim | count agrees | top agrees | median top box ct / yil | boxes ct / yil | pointing top / any / mirrored (yildirim val)')
for (const r of rows) {
  console.log([String(r.level) + (r === old ? ' (old)' : ''),
    `${pct(r.pooled.stable)} of ${r.pooled.slicesStoneAtEverySize}`, pct(r.ctKidney.stable), pct(r.yildirim.stable), pct(r.pooled.countAgrees), pct(r.pooled.topAgrees),
    `${pct(r.ctKidney.medianTopBoxShare)} / ${pct(r.yildirim.medianTopBoxShare)}`, `${r.ctKidney.meanBoxes.toFixed(2)} / ${r.yildirim.meanBoxes.toFixed(2)}`,
    `${r.pointing.topHits} / ${r.pointing.anyHits} / ${r.pointing.mirroredTopHits} of ${r.pointing.slicesCalledStone}`].join(' | '))
}
console.log(`chosen level: ${chosen?.level ?? 'none meets (b) and (c)'}; findings ${cost.oldMsPerCall.toFixed(2)} ms (old) / ${cost.chosenMsPerCall.toFixed(2)} ms (chosen) per Stone answer, inference ${cost.inferenceMsPerImage.toFixed(2)} ms/image`)

const out = opts.out ?? `bench/results/findings-rule-${resultsStamp(new Date())}.json`
await writeFile(out, JSON.stringify({
  command: ['taskset -c 1 npx tsx bench/findings-rule.ts', ...process.argv.slice(2)].join(' '),
  date: new Date().toISOString(),
  model: { name: spec.name, version: spec.version, threshold: spec.threshold },
  slices: { ctKidneyValStone: slices.filter((s) => s.dataset === 'ct-kidney').length, yildirimVal: slices.filter((s) => s.dataset === 'yildirim').length },
  uploads: ['original', ...widths],
  iouAgrees: IOU_AGREES,
  cost,
  rows,
  chosenLevel: chosen?.level ?? null
}, null, 2) + '\n')
console.log(`written ${out}`)
