import { seededRandom } from '../data/random.js'

/**
 * Seeded cluster bootstrap: slices of one CT series (or one yildirim export group) are near-copies, so
 * the unit that is resampled is the group, never the slice. Groups are resampled within their stratum
 * (ct-kidney: the series' label), which keeps both classes in every resample while the test split has only
 * 5 Normal series.
 */
export interface Estimate {
  value: number
  /** 95 % percentile interval; NaN when fewer than half the resamples gave a defined value. */
  lower: number
  upper: number
}

export interface BootstrapOptions {
  iterations: number
  seed: number
}

function percentile (sortedValues: readonly number[], fraction: number): number {
  const position = fraction * (sortedValues.length - 1)
  const below = Math.floor(position)
  const above = Math.min(sortedValues.length - 1, below + 1)
  return sortedValues[below] + (sortedValues[above] - sortedValues[below]) * (position - below)
}

/** The items of each group (a series, a patient), in first-seen order. */
export function groupsOf<T> (items: readonly T[], groupOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const group = groups.get(groupOf(item))
    if (group === undefined) groups.set(groupOf(item), [item])
    else group.push(item)
  }
  return groups
}

/**
 * Computes every statistic of `statistics(items)` on the full data and on `iterations` group resamples.
 * `groupOf` names an item's cluster, `stratumOf` its stratum (all items of a group must share it).
 */
export function bootstrapByGroup<T, K extends string> (
  items: readonly T[],
  groupOf: (item: T) => string,
  stratumOf: (item: T) => string,
  statistics: (items: readonly T[]) => Record<K, number>,
  options: BootstrapOptions
): Record<K, Estimate> {
  const pointEstimates = statistics(items)
  const groups = groupsOf(items, groupOf)
  const strata = new Map<string, T[][]>()
  for (const members of [...groups.values()]) {
    const stratum = stratumOf(members[0])
    strata.set(stratum, [...(strata.get(stratum) ?? []), members])
  }

  const random = seededRandom(options.seed)
  const samples = Object.fromEntries(Object.keys(pointEstimates).map((key) => [key, [] as number[]])) as Record<K, number[]>
  for (let iteration = 0; iteration < options.iterations; iteration++) {
    const resample: T[] = []
    for (const stratumGroups of strata.values()) {
      for (let i = 0; i < stratumGroups.length; i++) {
        resample.push(...stratumGroups[Math.floor(random() * stratumGroups.length)])
      }
    }
    const values = statistics(resample)
    for (const key of Object.keys(values) as K[]) {
      if (Number.isFinite(values[key])) samples[key].push(values[key])
    }
  }

  const estimates = {} as Record<K, Estimate>
  for (const key of Object.keys(pointEstimates) as K[]) {
    const sorted = samples[key].sort((a, b) => a - b)
    const defined = sorted.length >= options.iterations / 2 && sorted.length > 0
    estimates[key] = {
      value: pointEstimates[key],
      lower: defined ? percentile(sorted, 0.025) : NaN,
      upper: defined ? percentile(sorted, 0.975) : NaN
    }
  }
  return estimates
}
