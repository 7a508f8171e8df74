import { bootstrapByGroup, groupsOf, type BootstrapOptions, type Estimate } from './bootstrap.js'
import { meanProbability } from './metrics.js'

/** One held-out stone-free slice of ct-kidney-other (a cyst or a tumour, Normal for the service). */
export interface StoneFreeSlice {
  group: string
  finding: 'cyst' | 'tumor'
  probability: number
}

export interface SeriesFigures {
  group: string
  slices: number
  /** The per-series score of ct-kidney-metrics: mean P(Stone) of its slices, called Stone at the same threshold. */
  meanProbability: number
  calledNormal: boolean
  /** Share of the series' slices called Normal. */
  specificity: number
}

export interface StoneFreeFigures {
  images: number
  /** Per image, with a bootstrap over the series. */
  specificity: Estimate
  series: SeriesFigures[]
  seriesCalledNormal: number
}

export type StoneFreeMetrics = Record<'cyst' | 'tumor', StoneFreeFigures>

function specificity (slices: readonly StoneFreeSlice[], threshold: number): number {
  return slices.filter((slice) => slice.probability < threshold).length / slices.length
}

/** ct-kidney-other test, per image and per series, cysts and tumours apart. */
export function stoneFreeMetrics (slices: readonly StoneFreeSlice[], threshold: number, bootstrap: BootstrapOptions): StoneFreeMetrics {
  const figures = (finding: StoneFreeSlice['finding']): StoneFreeFigures => {
    const members = slices.filter((slice) => slice.finding === finding)
    const series = [...groupsOf(members, (slice) => slice.group).entries()].map(([group, inSeries]): SeriesFigures => {
      const mean = meanProbability(inSeries)
      return { group, slices: inSeries.length, meanProbability: mean, calledNormal: mean < threshold, specificity: specificity(inSeries, threshold) }
    })
    const { specificity: estimate } = bootstrapByGroup(members, (slice) => slice.group, () => finding,
      (sample) => ({ specificity: specificity(sample, threshold) }), bootstrap)
    return { images: members.length, specificity: estimate, series, seriesCalledNormal: series.filter((s) => s.calledNormal).length }
  }
  return { cyst: figures('cyst'), tumor: figures('tumor') }
}
