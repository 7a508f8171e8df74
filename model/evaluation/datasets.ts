import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { decodeImage, type DecodedImage } from '../../inference/decode.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { decodeForModel } from '../../inference/preprocess.js'
import { placeDecoy, removeStones } from '../data/counterfactual.js'
import { readYildirimManifest, readYoloBoxes, YILDIRIM_DIR, type PixelBox } from '../data/yildirim.js'

/** Large enough for every shared slice (the biggest originals are screenshots of about 1.2 MP). */
const MAX_PIXELS = 40_000_000

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
