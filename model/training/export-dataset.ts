/**
 * `npm run dataset`: turns every ct-kidney slice and every yildirim slice (original, stones removed, decoy)
 * into the exact 224x224 uint8 pixels the service feeds the model, plus the stone boxes pushed through the same
 * resize as masks. ct-kidney files go through the service's own `decodeForModel`; yildirim slices are decoded to
 * full size for the in-painting (`decodeImage` + `resizeForModel`, byte for byte the same at their 391x320,
 * test/preprocess.test.ts). Python reads `.cache/images.u8`, `.cache/masks.u8` and
 * `.cache/index.json`, so training sees the served pixels and nothing else.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeImage, type DecodedImage } from '../../inference/decode.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { decodeForModel, resizeForModel } from '../../inference/preprocess.js'
import { placeDecoy, removeStones } from '../data/counterfactual.js'
import { readYildirimManifest, readYoloBoxes, YILDIRIM_DIR, type PixelBox } from '../data/yildirim.js'

const SHARED_DIR = path.resolve(process.env.SHARED_DIR ?? '../shared')
const CT_KIDNEY_DIR = path.join(SHARED_DIR, 'data/ct-kidney')
const CACHE_DIR = path.resolve('model/training/.cache')

/** The input contract the model is trained for; train.py writes the same values into the sidecar. */
export const TRAINING_INPUT: ModelSpec['input'] = {
  width: 224, height: 224, channels: 1, layout: 'NCHW', resize: 'contain', scale: 1 / 255, mean: [0], std: [1]
}
const SPEC = { input: TRAINING_INPUT } as ModelSpec
const SIZE = TRAINING_INPUT.width * TRAINING_INPUT.height

interface IndexEntry {
  /** Image path relative to the shared folder (`data/...`). */
  path: string
  source: 'ct-kidney' | 'ct-kidney-original' | 'yildirim'
  variant: 'original' | 'removed' | 'decoy'
  label: 0 | 1
  split: string
  group: string
  plane: string
  /** Row in masks.u8 (stone boxes at model resolution), -1 when there are no boxes. */
  mask: number
}

const entries: IndexEntry[] = []
const images: Buffer[] = []
const masks: Buffer[] = []
const trainingFiles = createHash('sha256')

/** One entry: its model-size pixels and, for slices with stone boxes, the boxes' mask at the same size. */
function add (entry: Omit<IndexEntry, 'mask'>, pixels: Buffer, mask?: Buffer): void {
  images.push(pixels)
  if (mask !== undefined) masks.push(mask)
  entries.push({ ...entry, mask: mask === undefined ? -1 : masks.length - 1 })
}

/** A full-size image with its stone boxes (possibly none) through the service's resize. */
async function addDecoded (entry: Omit<IndexEntry, 'mask'>, image: DecodedImage, boxes: PixelBox[]): Promise<void> {
  add(entry, await resizeForModel(image, SPEC), await resizeForModel(boxMask(image, boxes), SPEC))
}

/** Boxes drawn as a white-on-black image of the original size, so the letterbox maps them like the pixels. */
function boxMask (image: DecodedImage, boxes: PixelBox[]): DecodedImage {
  const pixels = Buffer.alloc(image.width * image.height)
  for (const b of boxes) {
    for (let y = b.y; y < b.y + b.height; y++) pixels.fill(255, y * image.width + b.x, y * image.width + b.x + b.width)
  }
  return { pixels, width: image.width, height: image.height, channels: 1 }
}

const DECODE_OPTIONS = { channels: 1, maxPixels: 50_000_000 } as const

async function readTrainingFile (file: string, split: string): Promise<Buffer> {
  const bytes = await readFile(file)
  if (split !== 'test') trainingFiles.update(path.relative(SHARED_DIR, file)).update(bytes)
  return bytes
}

async function exportCtKidney (): Promise<void> {
  const lines = (await readFile(path.join(CT_KIDNEY_DIR, 'manifest.csv'), 'utf8')).trim().split(/\r?\n/)
  const header = lines[0].split(',')
  const col = (name: string): number => header.indexOf(name)
  for (const line of lines.slice(1)) {
    const cells = line.split(',')
    const rel = cells[col('path')]
    const row = {
      label: (cells[col('label')] === 'stone' ? 1 : 0) as 0 | 1,
      split: cells[col('split')],
      group: cells[col('group')],
      plane: cells[col('plane')],
      variant: 'original' as const
    }
    const bytes = await readTrainingFile(path.join(CT_KIDNEY_DIR, rel), row.split)
    add({ ...row, path: `data/ct-kidney/${rel}`, source: 'ct-kidney' }, await decodeForModel(bytes, SPEC, DECODE_OPTIONS))
    // the 40 untouched hospital exports sit in originals/ under the same file name as their test slice
    const original = path.join('originals', path.basename(path.dirname(rel)), path.basename(rel))
    const originalBytes = await readFile(path.join(CT_KIDNEY_DIR, original)).catch(() => undefined)
    if (originalBytes !== undefined) {
      const pixels = await decodeForModel(originalBytes, SPEC, DECODE_OPTIONS)
      add({ ...row, path: `data/ct-kidney/${original}`, source: 'ct-kidney-original' }, pixels)
    }
  }
}

async function exportYildirim (): Promise<{ noDecoy: number }> {
  let noDecoy = 0
  for (const [k, e] of (await readYildirimManifest()).entries()) {
    const image = await decodeImage(await readTrainingFile(path.join(YILDIRIM_DIR, e.image), e.split), DECODE_OPTIONS)
    const boxes = await readYoloBoxes(path.join(YILDIRIM_DIR, e.labels), image.width, image.height)
    const row = { path: `data/yildirim-stones/${e.image}`, source: 'yildirim' as const, split: e.split, group: e.group, plane: 'coronal' }
    const removed = removeStones(image, boxes, { seed: k + 1 })
    await addDecoded({ ...row, variant: 'original', label: 1 }, image, removed.regions)
    await addDecoded({ ...row, variant: 'removed', label: 0 }, removed.image, [])
    const decoy = placeDecoy(image, boxes, { seed: k + 1 })
    if (decoy === undefined) noDecoy++
    else await addDecoded({ ...row, variant: 'decoy', label: 1 }, decoy.image, removed.regions)
  }
  return { noDecoy }
}

const started = Date.now()
await exportCtKidney()
const { noDecoy } = await exportYildirim()
await mkdir(CACHE_DIR, { recursive: true })
await writeFile(path.join(CACHE_DIR, 'images.u8'), Buffer.concat(images))
await writeFile(path.join(CACHE_DIR, 'masks.u8'), Buffer.concat(masks))
await writeFile(path.join(CACHE_DIR, 'index.json'), JSON.stringify({
  input: TRAINING_INPUT,
  imageBytes: SIZE,
  trainingDataHash: trainingFiles.digest('hex'),
  entries
}))
console.log(`exported ${entries.length} images (${masks.length} masks, ${noDecoy} slices without a decoy place) ` +
  `to ${path.relative(process.cwd(), CACHE_DIR)} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
