import type { Box } from '../../inference/letterbox.js'
import type { Finding } from '../../inference/findings.js'
import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'

/**
 * Pointing game on the held-out yildirim groups: of the stone slices the model calls Stone, how often the top
 * finding's box touches a true stone box, and how often any of the (up to 3) findings does. Boxes touch when
 * they overlap or share an edge, in pixels of the uploaded image.
 *
 * A large box touches a stone by its size alone, so two controls come with the hit rates: the top box's area as
 * a share of the image, and the hit rate of the same box mirrored left-right (to the other kidney on these
 * coronal slices), which is what a box of that size and height scores without looking at the stone.
 */
export interface PointedSlice {
  group: string
  stones: Box[]
  findings: Finding[]
  /** Size of the uploaded image, in the pixels of the boxes. */
  image: { width: number, height: number }
}

export interface PointingGameMetrics {
  slicesCalledStone: number
  groups: number
  topHit: Estimate
  anyHit: Estimate
  /** The top box mirrored left-right touches a true stone box: the chance control. */
  mirroredTopHit: Estimate
  topHits: number
  anyHits: number
  mirroredTopHits: number
  /** Median area of the top finding's box as a share of the image. */
  medianTopBoxShare: number
}

export function touches (a: Box, b: Box): boolean {
  return a.x <= b.x + b.width && b.x <= a.x + a.width && a.y <= b.y + b.height && b.y <= a.y + a.height
}

export function topHit (slice: PointedSlice): boolean {
  return slice.findings.length > 0 && slice.stones.some((stone) => touches(slice.findings[0].box, stone))
}

export function mirroredTopHit (slice: PointedSlice): boolean {
  if (slice.findings.length === 0) return false
  const box = slice.findings[0].box
  const mirrored = { ...box, x: slice.image.width - box.x - box.width }
  return slice.stones.some((stone) => touches(mirrored, stone))
}

export function anyHit (slice: PointedSlice): boolean {
  return slice.findings.some((finding) => slice.stones.some((stone) => touches(finding.box, stone)))
}

export function pointingGame (slices: readonly PointedSlice[], bootstrap: BootstrapOptions): PointingGameMetrics {
  const share = (sample: readonly PointedSlice[], hit: (slice: PointedSlice) => boolean): number =>
    sample.filter(hit).length / sample.length
  const estimates = bootstrapByGroup(slices, (slice) => slice.group, () => 'all',
    (sample) => ({ topHit: share(sample, topHit), anyHit: share(sample, anyHit), mirroredTopHit: share(sample, mirroredTopHit) }),
    bootstrap)
  const shares = slices.filter((slice) => slice.findings.length > 0)
    .map(({ findings: [top], image }) => top.box.width * top.box.height / (image.width * image.height))
    .sort((a, b) => a - b)
  return {
    slicesCalledStone: slices.length,
    groups: new Set(slices.map((slice) => slice.group)).size,
    ...estimates,
    topHits: slices.filter(topHit).length,
    anyHits: slices.filter(anyHit).length,
    mirroredTopHits: slices.filter(mirroredTopHit).length,
    medianTopBoxShare: shares.length === 0 ? Number.NaN : shares[Math.floor((shares.length - 1) / 2)]
  }
}
