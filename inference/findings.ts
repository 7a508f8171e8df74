import { connectedRegions } from './connected-regions.js'
import { letterboxOf, toOriginalBox, type Box } from './letterbox.js'
import type { ModelSpec } from './model-spec.js'

/**
 * Where a Stone answer's evidence is: up to three regions of the model's class activation map, as boxes in the
 * pixels of the uploaded image. The rule (docs/model.md explains it for readers of the answers):
 *
 * 1. Evidence map: Stone-minus-Normal of the `cam` output ([classes, h, w]); for the 2.0 network this is the
 *    evidence e whose maximum is the Stone logit margin.
 * 2. It is upsampled bilinearly (cell centres, as a half-pixel resize) to the model input (224x224).
 * 3. Level: three quarters of the way from the map's median (background) to its peak. Pixels at or above it form
 *    regions (4-connected); each region's box is its bounding box.
 * 4. Score of a region: sigmoid(peak / temperature), its peak being the highest map cell whose centre lies in
 *    it: the P(Stone) the model would give if that region were the only evidence. With the max-pooling network
 *    the top region holds the map's maximum, so its score is the answer's P(Stone).
 * 5. Regions are ranked by score; the top 3 are mapped back through the letterbox ('contain' padding removed,
 *    scale undone) to whole pixels of the uploaded image. Regions lying only in the padding are dropped.
 *
 * A Normal answer has no findings. Pure code: no Fastify, no I/O.
 */

export interface Finding {
  /** In pixels of the uploaded image (DICOM: Columns x Rows): top-left corner and size, whole pixels. */
  box: Box
  /** sigmoid(region peak / temperature), 0..1: see the rule above. */
  score: number
}

/** Stone-minus-Normal evidence per activation-map cell, row-major. */
export interface EvidenceMap {
  values: Float32Array
  width: number
  height: number
}

export const MAX_FINDINGS = 3
/**
 * Fraction of the way from the map's median to its peak at which a region starts. At 0.5 a broad shoulder of the
 * peak lying about halfway up joined the other kidney and the spine to the box at one upload size and not at the
 * next; bench/findings-rule.ts chose 0.75 on validation slices (docs/model.md gives the figures).
 */
export const FINDING_LEVEL = 0.75

/** The Stone-minus-Normal map of image `index` in a batch `cam` output of dims [N, classes, h, w]. */
export function evidenceMap (cam: Float32Array, dims: readonly number[], index: number, positiveIndex: number): EvidenceMap {
  const [, classes, height, width] = dims
  if (classes !== 2) throw new RangeError(`cam output: expected 2 classes, got ${classes}`)
  const plane = height * width
  const stone = (index * classes + positiveIndex) * plane
  const normal = (index * classes + 1 - positiveIndex) * plane
  const values = new Float32Array(plane)
  for (let k = 0; k < plane; k++) values[k] = cam[stone + k] - cam[normal + k]
  return { values, width, height }
}

export interface FindingsOptions {
  /** Whether the answer is Stone; Normal answers have no findings. */
  isStone: boolean
  /** Size of the uploaded image (after EXIF orientation; DICOM: Columns x Rows). */
  original: { width: number, height: number }
  input: ModelSpec['input']
  temperature: number
  /** FINDING_LEVEL unless given: bench/findings-rule.ts compares other levels. */
  level?: number
}

export function findingsOf (map: EvidenceMap, options: FindingsOptions): Finding[] {
  if (!options.isStone) return []
  const { width, height } = options.input
  const upsampled = upsample(map, width, height)
  const median = lowerMedian(upsampled)
  const peak = upsampled.reduce((highest, value) => Math.max(highest, value), -Infinity)
  if (!(peak > median)) return []
  const level = median + (options.level ?? FINDING_LEVEL) * (peak - median)
  const letterbox = letterboxOf(options.original, options.input)
  const regions = connectedRegions(width, height, (i) => upsampled[i] >= level)
  // each map cell votes for the region holding its centre pixel: a region's peak is its highest cell, so the top
  // region's peak is the map's maximum exactly (the logit margin of the max-pooling network)
  const peaks = regions.map((region) => region.cells.reduce((highest, i) => Math.max(highest, upsampled[i]), -Infinity))
  const regionAt = new Int32Array(width * height).fill(-1)
  regions.forEach((region, r) => { for (const i of region.cells) regionAt[i] = r })
  for (let cy = 0; cy < map.height; cy++) {
    for (let cx = 0; cx < map.width; cx++) {
      const r = regionAt[Math.floor((cy + 0.5) * height / map.height) * width + Math.floor((cx + 0.5) * width / map.width)]
      if (r >= 0) peaks[r] = Math.max(peaks[r], map.values[cy * map.width + cx])
    }
  }
  return regions
    .map((region, r) => ({ region, peak: peaks[r] }))
    .sort((a, b) => b.peak - a.peak)
    .map(({ region, peak }) => ({
      box: wholePixels(toOriginalBox(region, letterbox, options.original)),
      score: 1 / (1 + Math.exp(-peak / options.temperature))
    }))
    .filter((finding) => finding.box.width > 0 && finding.box.height > 0)
    .slice(0, MAX_FINDINGS)
}

/** Bilinear, sampling at pixel centres (half-pixel convention), edges clamped. */
function upsample (map: EvidenceMap, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height)
  const axis = (size: number, cells: number): Array<{ low: number, high: number, weight: number }> =>
    Array.from({ length: size }, (_, i) => {
      const position = Math.min(cells - 1, Math.max(0, (i + 0.5) * cells / size - 0.5))
      const low = Math.floor(position)
      return { low, high: Math.min(cells - 1, low + 1), weight: position - low }
    })
  const columns = axis(width, map.width)
  const rows = axis(height, map.height)
  const at = (x: number, y: number): number => map.values[y * map.width + x]
  for (let y = 0; y < height; y++) {
    const r = rows[y]
    for (let x = 0; x < width; x++) {
      const c = columns[x]
      const top = at(c.low, r.low) * (1 - c.weight) + at(c.high, r.low) * c.weight
      const bottom = at(c.low, r.high) * (1 - c.weight) + at(c.high, r.high) * c.weight
      out[y * width + x] = top * (1 - r.weight) + bottom * r.weight
    }
  }
  return out
}

/**
 * The lower median (the middle value, or the lower of the two middle ones), by selection on a copy: linear time
 * where a sort of the 224x224 values took most of the rule's time.
 */
function lowerMedian (values: Float32Array): number {
  const copy = Float32Array.from(values)
  const k = Math.floor((copy.length - 1) / 2)
  let low = 0
  let high = copy.length - 1
  while (low < high) {
    const pivot = copy[(low + high) >>> 1]
    let i = low
    let j = high
    while (i <= j) {
      while (copy[i] < pivot) i++
      while (copy[j] > pivot) j--
      if (i <= j) {
        const swap = copy[i]
        copy[i++] = copy[j]
        copy[j--] = swap
      }
    }
    if (k <= j) high = j
    else if (k >= i) low = i
    else break
  }
  return copy[k]
}

/** Rounded outwards: the box covers every pixel the region touches. */
function wholePixels (box: Box): Box {
  const x = Math.floor(box.x)
  const y = Math.floor(box.y)
  return { x, y, width: Math.ceil(box.x + box.width) - x, height: Math.ceil(box.y + box.height) - y }
}
