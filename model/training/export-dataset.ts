/**
 * `npm run dataset`: turns every kidney CT slice (ct-kidney Normal / Stone, ct-kidney-other cyst / tumour) and
 * every yildirim slice (original, stones removed, decoy) into the exact 224x224 uint8 pixels the service feeds
 * the model, plus the stone boxes pushed through the same resize as masks, plus the stone-added counterfactuals
 * and vascular-calcification mimics (model/data/stone-added.ts) of the stone-free axial train and val slices. Slice files go through the service's
 * own `decodeForModel`; yildirim slices are decoded to full size for the in-painting (`decodeImage` +
 * `resizeForModel`, byte for byte the same at their 391x320, test/preprocess.test.ts). Python reads
 * `.cache/images.u8`, `.cache/masks.u8` and `.cache/index.json`, so training sees the served pixels and nothing else.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeImage, type DecodedImage } from '../../inference/decode.js'
import { decodeForModel, resizeForModel } from '../../inference/preprocess.js'
import { placeDecoy, removeStones } from '../data/counterfactual.js'
import { seededRandom } from '../data/random.js'
import { DATASET_DIRS, readAllSlices, readSeriesProtocols, SHARED_DIR, sliceFile, type Protocol, type SliceEntry, type Split } from '../data/slices.js'
import { addStoneTwins, addVascularMimic, MIMIC_SEED, patchPairs, type PatchPair } from '../data/stone-added.js'
import { readYildirimManifest, readYoloBoxes, YILDIRIM_DIR, type PixelBox } from '../data/yildirim.js'
import { TRAINING_INPUT, TRAINING_SPEC } from './training-input.js'

const CACHE_DIR = path.resolve('model/training/.cache')
const SIZE = TRAINING_INPUT.width * TRAINING_INPUT.height
const DECODE_OPTIONS = { channels: 1, maxPixels: 50_000_000 } as const

/**
 * Stone-added twin pairs made per stone-free axial slice (a fraction: that chance of one pair): cyst slices are
 * the scarce non-contrast negatives, so they get the most; every pair draws its own stone, place, size and
 * brightness. A third of the ct-kidney Normal val slices is enough for selection and keeps validation quick.
 */
const STONE_ADDED_PER_SLICE: Record<Split, Record<string, number>> = {
  train: { cyst: 3, tumor: 2, normal: 1 },
  val: { cyst: 1, tumor: 1, normal: 1 / 3 },
  test: {}
}

/**
 * Vascular-calcification mimics (label Normal) made per stone-free axial slice, as above. Trained on for the
 * non-contrast cysts only: taken from the contrast slices' share too (a 2.3.0 candidate), they cost the ct-kidney
 * figures more than they gave (model/MODEL_CARD.md, what was tried); val keeps every kind, to measure them.
 */
const MIMICS_PER_SLICE: Record<Split, Record<string, number>> = {
  train: { cyst: 1 },
  val: { cyst: 1, tumor: 1, normal: 1 / 3 },
  test: {}
}

interface IndexEntry {
  /** Image path relative to the shared folder (`data/...`); for stone-added twins, the slice they were made from. */
  path: string
  source: 'ct-kidney' | 'ct-kidney-other' | 'ct-kidney-original' | 'yildirim' | 'stone-added'
  variant: 'original' | 'removed' | 'decoy' | 'stone-added' | 'stone-added-decoy' | 'vascular-mimic'
  label: 0 | 1
  /** ct-kidney / ct-kidney-other class of the slice (yildirim: stone). */
  finding: string
  split: string
  group: string
  plane: string
  protocol: Protocol
  /** Row in masks.u8 (stone boxes at model resolution; row 0 is empty: no stone anywhere), -1 when unknown. */
  mask: number
  /** Stone-added twins: the same number for a stone-added image and its decoy twin. */
  pair?: number
}

const entries: IndexEntry[] = []
const images: Buffer[] = []
const masks: Buffer[] = [Buffer.alloc(SIZE)]
const NO_STONE_MASK = 0
const trainingFiles = createHash('sha256')

function add (entry: Omit<IndexEntry, 'mask'>, pixels: Uint8Array, mask?: Uint8Array | typeof NO_STONE_MASK): void {
  images.push(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength))
  let row = -1
  if (mask === NO_STONE_MASK) row = NO_STONE_MASK
  else if (mask !== undefined) {
    masks.push(Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength))
    row = masks.length - 1
  }
  entries.push({ ...entry, mask: row })
}

/** Boxes drawn as a white-on-black image of the given size, so a resize maps them like the pixels. */
function boxMask (width: number, height: number, boxes: PixelBox[]): Buffer {
  const pixels = Buffer.alloc(width * height)
  for (const b of boxes) {
    const x0 = Math.max(0, Math.floor(b.x))
    const x1 = Math.min(width, Math.ceil(b.x + b.width))
    for (let y = Math.max(0, Math.floor(b.y)); y < Math.min(height, Math.ceil(b.y + b.height)); y++) pixels.fill(255, y * width + x0, y * width + x1)
  }
  return pixels
}

async function readTrainingFile (file: string, split: string): Promise<Buffer> {
  const bytes = await readFile(file)
  if (split !== 'test') trainingFiles.update(path.relative(SHARED_DIR, file)).update(bytes)
  return bytes
}

/** Every slice file; returns the stone-free axial train / val slices' model inputs for the stone-added twins. */
async function exportSlices (protocols: Map<string, Protocol>): Promise<Array<{ slice: SliceEntry, pixels: Buffer }>> {
  const stoneFree: Array<{ slice: SliceEntry, pixels: Buffer }> = []
  for (const slice of await readAllSlices()) {
    const protocol = protocols.get(slice.group)
    if (protocol === undefined) throw new Error(`series ${slice.group} has no protocol in model/training/series-protocol.csv`)
    const row = { label: slice.label, finding: slice.finding, split: slice.split, group: slice.group, plane: slice.plane, protocol, variant: 'original' as const }
    const pixels = await decodeForModel(await readTrainingFile(sliceFile(slice), slice.split), TRAINING_SPEC, DECODE_OPTIONS)
    add({ ...row, path: `data/${slice.dataset}/${slice.path}`, source: slice.dataset }, pixels, slice.label === 0 ? NO_STONE_MASK : undefined)
    if (slice.label === 0 && slice.plane === 'axial' && slice.split !== 'test') stoneFree.push({ slice, pixels })
    if (slice.dataset !== 'ct-kidney') continue
    // the 40 untouched hospital exports sit in originals/ under the same file name as their test slice
    const original = path.join('originals', path.basename(path.dirname(slice.path)), path.basename(slice.path))
    const originalBytes = await readFile(path.join(DATASET_DIRS['ct-kidney'], original)).catch(() => undefined)
    if (originalBytes !== undefined) {
      add({ ...row, path: `data/ct-kidney/${original}`, source: 'ct-kidney-original' },
        await decodeForModel(originalBytes, TRAINING_SPEC, DECODE_OPTIONS), slice.label === 0 ? NO_STONE_MASK : undefined)
    }
  }
  return stoneFree
}

/** yildirim slices with their counterfactuals; returns the stone / decoy patch pairs of each split. */
async function exportYildirim (): Promise<{ noDecoy: number, pairs: Map<Split, PatchPair[]> }> {
  let noDecoy = 0
  const pairs = new Map<Split, PatchPair[]>()
  for (const [k, e] of (await readYildirimManifest()).entries()) {
    const image = await decodeImage(await readTrainingFile(path.join(YILDIRIM_DIR, e.image), e.split), DECODE_OPTIONS)
    const boxes = await readYoloBoxes(path.join(YILDIRIM_DIR, e.labels), image.width, image.height)
    const row = { path: `data/yildirim-stones/${e.image}`, source: 'yildirim' as const, split: e.split, group: e.group, plane: 'coronal', protocol: 'non-contrast' as const, finding: 'stone' }
    const removed = removeStones(image, boxes, { seed: k + 1 })
    const stoneMask = await modelInput({ pixels: boxMask(image.width, image.height, removed.regions), width: image.width, height: image.height, channels: 1 })
    const original = await modelInput(image)
    const stoneRemoved = await modelInput(removed.image)
    add({ ...row, variant: 'original', label: 1 }, original, stoneMask)
    add({ ...row, variant: 'removed', label: 0 }, stoneRemoved, NO_STONE_MASK)
    const decoy = placeDecoy(image, boxes, { seed: k + 1 })
    if (decoy === undefined) {
      noDecoy++
      continue
    }
    const decoyPixels = await modelInput(decoy.image)
    add({ ...row, variant: 'decoy', label: 1 }, decoyPixels, stoneMask)
    pairs.set(e.split, [...(pairs.get(e.split) ?? []), ...patchPairs({
      original, stoneRemoved, decoy: decoyPixels, originalSize: image, removedRegions: removed.regions, decoyRegions: decoy.regions
    }, TRAINING_INPUT)])
  }
  return { noDecoy, pairs }
}

async function modelInput (image: DecodedImage): Promise<Buffer> {
  return await resizeForModel(image, TRAINING_SPEC)
}

/** Stone-added twins of the stone-free axial train and val slices, with stones of the same split only. */
function exportStoneAdded (stoneFree: Array<{ slice: SliceEntry, pixels: Buffer }>, pairs: Map<Split, PatchPair[]>, protocols: Map<string, Protocol>): number {
  const { width, height } = TRAINING_INPUT
  let made = 0
  let pair = 0
  for (const [k, { slice, pixels }] of stoneFree.entries()) {
    const library = pairs.get(slice.split) ?? []
    const random = seededRandom(k + 1)
    const perSlice = STONE_ADDED_PER_SLICE[slice.split][slice.finding] ?? 0
    const copies = Math.floor(perSlice) + (random() < perSlice % 1 ? 1 : 0)
    for (let copy = 0; copy < copies; copy++) {
      const twins = addStoneTwins({ pixels, width, height }, library[Math.floor(random() * library.length)], random)
      if (twins === undefined) continue
      const row = {
        path: `data/${slice.dataset}/${slice.path}`, source: 'stone-added' as const, finding: slice.finding, split: slice.split,
        group: slice.group, plane: slice.plane, protocol: protocols.get(slice.group) as Protocol, pair
      }
      add({ ...row, variant: 'stone-added', label: 1 }, twins.stoneAdded, boxMask(width, height, [twins.box]))
      add({ ...row, variant: 'stone-added-decoy', label: 0 }, twins.decoy, NO_STONE_MASK)
      pair++
      made++
    }
  }
  return made
}

/** Vascular-calcification mimics of the stone-free axial train and val slices, with stones of the same split. */
function exportVascularMimics (stoneFree: Array<{ slice: SliceEntry, pixels: Buffer }>, pairs: Map<Split, PatchPair[]>, protocols: Map<string, Protocol>): number {
  const { width, height } = TRAINING_INPUT
  let made = 0
  for (const [k, { slice, pixels }] of stoneFree.entries()) {
    const library = pairs.get(slice.split) ?? []
    const random = seededRandom(MIMIC_SEED + k)
    const perSlice = MIMICS_PER_SLICE[slice.split][slice.finding] ?? 0
    if (random() >= perSlice) continue
    const mimic = addVascularMimic({ pixels, width, height }, library[Math.floor(random() * library.length)].stone, random)
    if (mimic === undefined) continue
    add({
      path: `data/${slice.dataset}/${slice.path}`, source: 'stone-added', variant: 'vascular-mimic', label: 0, finding: slice.finding,
      split: slice.split, group: slice.group, plane: slice.plane, protocol: protocols.get(slice.group) as Protocol
    }, mimic.image, NO_STONE_MASK)
    made++
  }
  return made
}

const started = Date.now()
const protocols = await readSeriesProtocols()
const stoneFree = await exportSlices(protocols)
const { noDecoy, pairs } = await exportYildirim()
const stoneAdded = exportStoneAdded(stoneFree, pairs, protocols)
const mimics = exportVascularMimics(stoneFree, pairs, protocols)
await mkdir(CACHE_DIR, { recursive: true })
await writeFile(path.join(CACHE_DIR, 'images.u8'), Buffer.concat(images))
await writeFile(path.join(CACHE_DIR, 'masks.u8'), Buffer.concat(masks))
await writeFile(path.join(CACHE_DIR, 'index.json'), JSON.stringify({
  input: TRAINING_INPUT,
  imageBytes: SIZE,
  trainingDataHash: trainingFiles.digest('hex'),
  entries
}))
console.log(`exported ${entries.length} images (${masks.length} masks, ${noDecoy} yildirim slices without a decoy place, ` +
  `${stoneAdded} stone-added twin pairs and ${mimics} vascular mimics from ${[...pairs.values()].reduce((n, p) => n + p.length, 0)} stone patches) ` +
  `to ${path.relative(process.cwd(), CACHE_DIR)} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
