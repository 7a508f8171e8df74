import { bootstrapByGroup, type BootstrapOptions, type Estimate } from './bootstrap.js'

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
    const groups = [...new Set(members.map((slice) => slice.group))]
    const series = groups.map((group): SeriesFigures => {
      const inSeries = members.filter((slice) => slice.group === group)
      const meanProbability = inSeries.reduce((sum, slice) => sum + slice.probability, 0) / inSeries.length
      return { group, slices: inSeries.length, meanProbability, calledNormal: meanProbability < threshold, specificity: specificity(inSeries, threshold) }
    })
    const { specificity: estimate } = bootstrapByGroup(members, (slice) => slice.group, () => finding,
      (sample) => ({ specificity: specificity(sample, threshold) }), bootstrap)
    return { images: members.length, specificity: estimate, series, seriesCalledNormal: series.filter((s) => s.calledNormal).length }
  }
  return { cyst: figures('cyst'), tumor: figures('tumor') }
}
