import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeImage, type DecodedImage } from '../../inference/decode.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { decodeForModel } from '../../inference/preprocess.js'
import { placeDecoy, removeStones } from '../data/counterfactual.js'
import { readYildirimManifest, readYoloBoxes, YILDIRIM_DIR, type PixelBox } from '../data/yildirim.js'

/** Where `../shared/data/ct-kidney` lives when run from the repo root (override with CT_KIDNEY_DIR). */
export const CT_KIDNEY_DIR = process.env.CT_KIDNEY_DIR ?? path.resolve('../shared/data/ct-kidney')

/** Large enough for every shared slice (the biggest originals are screenshots of about 1.2 MP). */
const MAX_PIXELS = 40_000_000

export interface CtKidneyEntry {
  /** Path relative to the ct-kidney folder. */
  path: string
  label: 0 | 1
  split: 'train' | 'val' | 'test'
  /** The patient series: the unit of the bootstrap and of per-series metrics. */
  group: string
  plane: 'axial' | 'coronal'
}

/** Reads ct-kidney's `manifest.csv` (no field contains a comma); `originals/` copies are listed under their test path. */
export async function readCtKidneyManifest (dir: string = CT_KIDNEY_DIR): Promise<CtKidneyEntry[]> {
  const lines = (await readFile(path.join(dir, 'manifest.csv'), 'utf8')).trim().split(/\r?\n/)
  const header = lines[0].split(',')
  const column = (name: string): number => {
    const index = header.indexOf(name)
    if (index < 0) throw new Error(`ct-kidney manifest has no column ${name}`)
    return index
  }
  const [pathColumn, labelColumn, splitColumn, groupColumn, planeColumn] =
    ['path', 'label', 'split', 'group', 'plane'].map(column)
  return lines.slice(1).map((line) => {
    const cells = line.split(',')
    return {
      path: cells[pathColumn],
      label: cells[labelColumn] === 'stone' ? 1 : 0,
      split: cells[splitColumn] as CtKidneyEntry['split'],
      group: cells[groupColumn],
      plane: cells[planeColumn] as CtKidneyEntry['plane']
    }
  })
}

/** Full size, for in-painting and overlays. */
async function decodeFile (file: string, channels: 1 | 3): Promise<DecodedImage> {
  return await decodeImage(await readFile(file), { channels, maxPixels: MAX_PIXELS })
}

/** The model input the service makes of this file when it is uploaded. */
export async function modelInputOfFile (file: string, spec: ModelSpec): Promise<Buffer> {
  return await decodeForModel(await readFile(file), spec, { channels: spec.input.channels, maxPixels: MAX_PIXELS })
}

/** One held-out yildirim slice with its two counterfactuals, all at the decoded image's size. */
export interface StoneTriplet {
  image: string
  group: string
  stones: PixelBox[]
  original: DecodedImage
  /** The same slice with every stone in-painted: a Normal slice as far as the label goes. */
  stoneRemoved: DecodedImage
  removedRegions: PixelBox[]
  /** The same in-painting applied away from the stones; undefined when no such place exists. */
  decoy: DecodedImage | undefined
  decoyRegions: PixelBox[]
}

/** Builds the stone-evidence triplets for every slice of the held-out yildirim test groups. */
export async function loadYildirimTestTriplets (channels: 1 | 3, dir: string = YILDIRIM_DIR): Promise<StoneTriplet[]> {
  const entries = (await readYildirimManifest(dir)).filter((entry) => entry.split === 'test')
  return await Promise.all(entries.map(async (entry): Promise<StoneTriplet> => {
    const original = await decodeFile(path.join(dir, entry.image), channels)
    const stones = await readYoloBoxes(path.join(dir, entry.labels), original.width, original.height)
    const removed = removeStones(original, stones)
    const decoy = placeDecoy(original, stones)
    const asDecoded = (image: typeof removed.image): DecodedImage => ({ ...image, channels })
    return {
      image: entry.image,
      group: entry.group,
      stones,
      original,
      stoneRemoved: asDecoded(removed.image),
      removedRegions: removed.regions,
      decoy: decoy === undefined ? undefined : asDecoded(decoy.image),
      decoyRegions: decoy?.regions ?? []
    }
  }))
}
