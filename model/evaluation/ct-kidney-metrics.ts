import { bootstrapByGroup, groupsOf, type BootstrapOptions, type Estimate } from './bootstrap.js'
import {
  confusionMatrix, expectedCalibrationError, meanProbability, reliabilityBins, rocAuc, sensitivity, specificity,
  type ConfusionMatrix, type ReliabilityBin, type Scored
} from './metrics.js'

export interface ScoredSlice extends Scored {
  group: string
  plane: 'axial' | 'coronal'
}

export interface ClassificationFigures {
  count: number
  sensitivity: Estimate
  specificity: Estimate
  rocAuc: Estimate
  expectedCalibrationError: Estimate
  confusion: ConfusionMatrix
}

export interface CtKidneyMetrics {
  perImage: ClassificationFigures & { reliability: ReliabilityBin[] }
  /** A series' score is the mean P(Stone) of its slices, called Stone at the same threshold. */
  perSeries: ClassificationFigures
  perPlane: Record<'axial' | 'coronal', ClassificationFigures>
}

type Statistic = 'sensitivity' | 'specificity' | 'rocAuc' | 'expectedCalibrationError'

function statistics (threshold: number) {
  return (items: readonly Scored[]): Record<Statistic, number> => {
    const matrix = confusionMatrix(items, threshold)
    return {
      sensitivity: sensitivity(matrix),
      specificity: specificity(matrix),
      rocAuc: rocAuc(items),
      expectedCalibrationError: expectedCalibrationError(items)
    }
  }
}

/** Per-image figures with a series bootstrap stratified by label (a series holds one label only). */
export function classificationFigures (
  items: readonly ScoredSlice[], threshold: number, bootstrap: BootstrapOptions
): ClassificationFigures {
  const estimates = bootstrapByGroup(items, (item) => item.group, (item) => String(item.label), statistics(threshold), bootstrap)
  return { count: items.length, ...estimates, confusion: confusionMatrix(items, threshold) }
}

export function seriesScores (slices: readonly ScoredSlice[]): ScoredSlice[] {
  return [...groupsOf(slices, (slice) => slice.group).entries()].map(([group, members]) => ({
    group, plane: members[0].plane, label: members[0].label, probability: meanProbability(members)
  }))
}

export function ctKidneyMetrics (slices: readonly ScoredSlice[], threshold: number, bootstrap: BootstrapOptions): CtKidneyMetrics {
  const figures = (subset: readonly ScoredSlice[]): ClassificationFigures => classificationFigures(subset, threshold, bootstrap)
  return {
    perImage: { ...figures(slices), reliability: reliabilityBins(slices) },
    perSeries: figures(seriesScores(slices)),
    perPlane: {
      axial: figures(slices.filter((slice) => slice.plane === 'axial')),
      coronal: figures(slices.filter((slice) => slice.plane === 'coronal'))
    }
  }
}
