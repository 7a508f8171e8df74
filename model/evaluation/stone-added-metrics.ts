import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'
import { rocAuc } from './metrics.js'

/**
 * Stone-added twins on held-out stone-free slices (cyst, tumour, ct-kidney axial Normal test) with held-out
 * yildirim stones: the same slice scored untouched, with a stone blended into a kidney and with the decoy
 * blending at the same place. Partly in-distribution: the model was trained on such twins of train slices.
 */
export interface StoneAddedTwin {
  group: string
  finding: string
  untouched: number
  stoneAdded: number
  decoy: number
}

export interface StoneAddedMetrics {
  pairs: number
  series: number
  /** Stone-added vs their decoy twins. */
  pairsAuc: Estimate
  /** Share of twins where the stone-added slice scores above the untouched slice. */
  winRateOverUntouched: Estimate
  sensitivity: Estimate
  decoySpecificity: Estimate
}

export function stoneAddedMetrics (twins: readonly StoneAddedTwin[], threshold: number, bootstrap: BootstrapOptions): StoneAddedMetrics {
  const estimates = bootstrapByGroup(twins, (twin) => twin.group, (twin) => twin.finding, (sample) => ({
    pairsAuc: rocAuc(sample.flatMap((twin) => [{ probability: twin.stoneAdded, label: 1 as const }, { probability: twin.decoy, label: 0 as const }])),
    winRateOverUntouched: sample.filter((twin) => twin.stoneAdded > twin.untouched).length / sample.length,
    sensitivity: sample.filter((twin) => twin.stoneAdded >= threshold).length / sample.length,
    decoySpecificity: sample.filter((twin) => twin.decoy < threshold).length / sample.length
  }), bootstrap)
  return { pairs: twins.length, series: new Set(twins.map((twin) => twin.group)).size, ...estimates }
}

/** A held-out stone-free slice scored untouched and with a vascular-calcification mimic (label Normal). */
export interface VascularMimic {
  group: string
  finding: string
  untouched: number
  mimic: number
}

export interface VascularMimicMetrics {
  images: number
  series: number
  specificity: Estimate
  /** Share of slices scoring higher with the mimic than untouched. */
  riseOverUntouched: Estimate
}

export function vascularMimicMetrics (mimics: readonly VascularMimic[], threshold: number, bootstrap: BootstrapOptions): VascularMimicMetrics {
  const estimates = bootstrapByGroup(mimics, (m) => m.group, (m) => m.finding, (sample) => ({
    specificity: sample.filter((m) => m.mimic < threshold).length / sample.length,
    riseOverUntouched: sample.filter((m) => m.mimic > m.untouched).length / sample.length
  }), bootstrap)
  return { images: mimics.length, series: new Set(mimics.map((m) => m.group)).size, ...estimates }
}
