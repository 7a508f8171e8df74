import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'
import { rocAuc, type Scored } from './metrics.js'

/** P(Stone) for one held-out yildirim slice and its counterfactuals, from the model and from the probe. */
export interface ScoredTriplet {
  group: string
  original: number
  stoneRemoved: number
  /** Undefined when no stone-free place for the decoy in-painting exists in this slice. */
  decoy: number | undefined
  probeOriginal: number
  probeStoneRemoved: number
}

type Statistic =
  | 'sensitivityOriginal' | 'specificityStoneRemoved' | 'pairsAuc' | 'pairedWinRate'
  | 'decoySensitivity' | 'decoyMinusOriginalSensitivity' | 'probePairsAuc' | 'specificityAt90Sensitivity'

export interface StoneEvidenceMetrics extends Record<Statistic, Estimate> {
  slices: number
  groups: number
  slicesWithDecoy: number
  originalsCalledStone: number
  stoneRemovedCalledStone: number
  decoysCalledStone: number
}

function fraction (values: readonly boolean[]): number {
  return values.filter(Boolean).length / values.length
}

function pairsAuc (triplets: readonly ScoredTriplet[], original: (t: ScoredTriplet) => number, removed: (t: ScoredTriplet) => number): number {
  const items: Scored[] = triplets.flatMap((t) => [
    { probability: original(t), label: 1 as const },
    { probability: removed(t), label: 0 as const }
  ])
  return rocAuc(items)
}

/**
 * Specificity on the stone-removed twins at the highest cut that still calls 90 % of the originals Stone: the
 * issue's "specificity >= 90 % at sensitivity >= 90 %" read off the held-out ROC. Descriptive only: a cut chosen
 * on test data is not a usable threshold, the service uses the sidecar's.
 */
function specificityAt90Sensitivity (triplets: readonly ScoredTriplet[]): number {
  const originals = triplets.map((t) => t.original).sort((a, b) => a - b)
  const cut = originals[Math.floor(0.1 * originals.length)]
  return fraction(triplets.map((t) => t.stoneRemoved < cut))
}

function statistics (threshold: number) {
  return (triplets: readonly ScoredTriplet[]): Record<Statistic, number> => {
    const withDecoy = triplets.filter((t) => t.decoy !== undefined)
    const decoySensitivity = fraction(withDecoy.map((t) => (t.decoy as number) >= threshold))
    return {
      sensitivityOriginal: fraction(triplets.map((t) => t.original >= threshold)),
      specificityStoneRemoved: fraction(triplets.map((t) => t.stoneRemoved < threshold)),
      pairsAuc: pairsAuc(triplets, (t) => t.original, (t) => t.stoneRemoved),
      // The twin-by-twin view of the same question: how often the slice with stones scores higher.
      pairedWinRate: triplets.reduce((sum, t) =>
        sum + (t.original > t.stoneRemoved ? 1 : t.original === t.stoneRemoved ? 0.5 : 0), 0) / triplets.length,
      decoySensitivity,
      // Compared on the same slices, so the difference is the decoy's effect alone.
      decoyMinusOriginalSensitivity: decoySensitivity - fraction(withDecoy.map((t) => t.original >= threshold)),
      probePairsAuc: pairsAuc(triplets, (t) => t.probeOriginal, (t) => t.probeStoneRemoved),
      specificityAt90Sensitivity: specificityAt90Sensitivity(triplets)
    }
  }
}

export function stoneEvidenceMetrics (triplets: readonly ScoredTriplet[], threshold: number, bootstrap: BootstrapOptions): StoneEvidenceMetrics {
  const estimates = bootstrapByGroup(triplets, (t) => t.group, () => 'all', statistics(threshold), bootstrap)
  return {
    slices: triplets.length,
    groups: new Set(triplets.map((t) => t.group)).size,
    slicesWithDecoy: triplets.filter((t) => t.decoy !== undefined).length,
    originalsCalledStone: triplets.filter((t) => t.original >= threshold).length,
    stoneRemovedCalledStone: triplets.filter((t) => t.stoneRemoved >= threshold).length,
    decoysCalledStone: triplets.filter((t) => t.decoy !== undefined && t.decoy >= threshold).length,
    ...estimates
  }
}
