import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'
import { rocAuc, type Scored } from './metrics.js'

/**
 * The non-contrast pair: ct-kidney axial Stone test slices (label 1) against ct-kidney-other cyst test slices
 * (label 0). Both are unenhanced axial kidney CTs, so what separates them should be the stone; the 8x8 probe and
 * the mean grey level show how far the export look alone goes.
 */
export interface NonContrastSlice extends Scored {
  group: string
  probeProbability: number
  meanGrey: number
}

export interface NonContrastMetrics {
  stoneSlices: number
  cystSlices: number
  rocAuc: Estimate
  probeRocAuc: Estimate
  meanGreyRocAuc: Estimate
  /** Fitted on the same pair's train slices, ridge chosen on its val slices. */
  probe: { trainImages: number, l2: number, valAuc: number }
}

export function nonContrastMetrics (
  slices: readonly NonContrastSlice[], probe: NonContrastMetrics['probe'], bootstrap: BootstrapOptions
): NonContrastMetrics {
  const auc = (sample: readonly NonContrastSlice[], score: (slice: NonContrastSlice) => number): number =>
    rocAuc(sample.map((slice) => ({ probability: score(slice), label: slice.label })))
  const estimates = bootstrapByGroup(slices, (slice) => slice.group, (slice) => String(slice.label), (sample) => ({
    rocAuc: auc(sample, (slice) => slice.probability),
    probeRocAuc: auc(sample, (slice) => slice.probeProbability),
    meanGreyRocAuc: auc(sample, (slice) => slice.meanGrey)
  }), bootstrap)
  return {
    stoneSlices: slices.filter((slice) => slice.label === 1).length,
    cystSlices: slices.filter((slice) => slice.label === 0).length,
    ...estimates,
    probe
  }
}
