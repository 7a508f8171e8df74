import type { Box } from '../../inference/letterbox.js'
import type { Finding } from '../../inference/findings.js'
import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'

/**
 * Pointing game on the held-out yildirim groups: of the stone slices the model calls Stone, how often the top
 * finding's box touches a true stone box, and how often any of the (up to 3) findings does. Boxes touch when
 * they overlap or share an edge, in pixels of the uploaded image.
 */
export interface PointedSlice {
  group: string
  stones: Box[]
  findings: Finding[]
}

export interface PointingGameMetrics {
  slicesCalledStone: number
  groups: number
  topHit: Estimate
  anyHit: Estimate
  topHits: number
  anyHits: number
}

export function touches (a: Box, b: Box): boolean {
  return a.x <= b.x + b.width && b.x <= a.x + a.width && a.y <= b.y + b.height && b.y <= a.y + a.height
}

export function topHit (slice: PointedSlice): boolean {
  return slice.findings.length > 0 && slice.stones.some((stone) => touches(slice.findings[0].box, stone))
}

export function anyHit (slice: PointedSlice): boolean {
  return slice.findings.some((finding) => slice.stones.some((stone) => touches(finding.box, stone)))
}

export function pointingGame (slices: readonly PointedSlice[], bootstrap: BootstrapOptions): PointingGameMetrics {
  const share = (sample: readonly PointedSlice[], hit: (slice: PointedSlice) => boolean): number =>
    sample.filter(hit).length / sample.length
  const estimates = bootstrapByGroup(slices, (slice) => slice.group, () => 'all',
    (sample) => ({ topHit: share(sample, topHit), anyHit: share(sample, anyHit) }), bootstrap)
  return {
    slicesCalledStone: slices.length,
    groups: new Set(slices.map((slice) => slice.group)).size,
    ...estimates,
    topHits: slices.filter(topHit).length,
    anyHits: slices.filter(anyHit).length
  }
}
