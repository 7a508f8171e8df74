/**
 * The series conclusion rule: from the per-slice P(Stone) of one CT series to one answer for the series.
 *
 * Rule: a series is **Stone when at least `minAdjacentSlices` (k, default 2) adjacent slices have P(Stone) at or
 * above the model's decision threshold**; Normal when slices were classified and no such run exists; Undetermined
 * when no slice was classified.
 *
 * Why k = 2:
 * - Partial volume: a stone at least as large as the slice spacing touches two or more contiguous slices whatever
 *   its position relative to the slice boundaries (a stone of size d on spacing s spans ceil(d/s) or ceil(d/s) + 1
 *   slices). Thin-slice stone protocols (1-3 mm) therefore show every clinically relevant stone (>= 3 mm) on at
 *   least two slices, and neighbouring slices are near-copies, so a real finding makes the model fire on a run.
 * - A single positive slice among normal neighbours is the typical single-image error (an artefact, a calcified
 *   vessel, bowel content): with a per-slice false-positive rate p, an isolated error calls a 300-slice series
 *   Stone with probability about 300p, a pair of adjacent errors only when the errors cluster.
 * - The cost: a stone smaller than the spacing (e.g. 2 mm on 5 mm slices) may show on one slice only and is then
 *   not called. Such slices are still reported (`isolatedPositiveSlices`, `maxProbability`) so a reader sees them,
 *   and k is configurable (SERIES_MIN_ADJACENT_SLICES; 1 is the per-slice rule "any slice Stone").
 *   A series with fewer classified slices than k is judged with k = its slice count (a single slice decides alone).
 *
 * Order and adjacency: slices are ordered by slice position (mm along the slice normal), then InstanceNumber, then
 * the order given. Two consecutive slices are adjacent unless a slice is missing between them: with positions, their
 * distance exceeds `gapFactor` (1.5) times the series' median spacing; without positions, their InstanceNumbers
 * differ by more than 1. A slice that failed to classify is absent, so it breaks a run rather than joining it. A run
 * counts the slice positions it covers: instances at one position are one slice of the rule.
 *
 * Pure: no I/O, no clock. The study results (GET /studies/{uid}), the CLI and the web page use it alike.
 */

export type SeriesConclusionValue = 'Stone' | 'Normal' | 'Undetermined'

/** One classified instance of a series. */
export interface SliceResult {
  /** mm along the slice normal (records' slice_position). */
  slicePosition?: number
  instanceNumber?: number
  /** P(Stone), calibrated, as in the answer. */
  probability: number
  /** The per-slice decision ('Stone' or 'Normal'), kept for the reader; the rule uses `probability` vs `threshold`. */
  prediction: string
}

/** One frame's answer in a multi-frame object's answer (its `frames`): `frame` 1-based. */
export interface FrameAnswer {
  frame: number
  slicePosition?: number
  prediction: string
  probabilities: { Stone: number }
}

/**
 * The slices one classified instance brings to its series: each frame of a multi-frame object (an Enhanced CT holds a
 * series in one object), with its own position and answer, else the instance itself. A frame carries no
 * InstanceNumber: the object's names all its frames alike. POST /predict/batch and the CLI (batch-summary.ts) and
 * GET /studies (records/study-result.ts) count and conclude slices through this one function.
 */
export function instanceSlices (instance: SliceResult, frames: readonly FrameAnswer[] | undefined): Array<SliceResult & { frame?: number }> {
  if (frames === undefined) return [instance]
  return frames.map(({ frame, slicePosition, prediction, probabilities }) => ({
    frame,
    ...(slicePosition === undefined ? {} : { slicePosition }),
    probability: probabilities.Stone,
    prediction
  }))
}

export interface SeriesRule {
  /** P(Stone) at or above which a slice is positive: the model's decision threshold. */
  threshold: number
  /** k: adjacent positive slices needed to call the series Stone. */
  minAdjacentSlices: number
  /** A spacing above gapFactor x the median spacing means a slice is missing there. */
  gapFactor: number
}

export const DEFAULT_MIN_ADJACENT_SLICES = 2
export const DEFAULT_GAP_FACTOR = 1.5

/** One run of adjacent positive slices, by position in the ordered series (0-based, inclusive). */
export interface PositiveRange {
  first: number
  last: number
  slices: number
  /** Slice position (mm) of the first and last slice, when known. */
  fromPosition?: number
  toPosition?: number
  /** InstanceNumber of the first and last slice, when known. */
  fromInstanceNumber?: number
  toInstanceNumber?: number
  maxProbability: number
}

export interface SeriesConclusion {
  conclusion: SeriesConclusionValue
  /** Runs of at least k adjacent positive slices (the ones that make the series Stone), in slice order. */
  positiveRanges: PositiveRange[]
  /** Positive slices in runs shorter than k: shown, not counted. */
  isolatedPositiveSlices: number
  /** Highest P(Stone) of the series, and the ordered index of that slice; absent when nothing was classified. */
  maxProbability?: number
  maxProbabilityIndex?: number
  /** The rule as applied (k is capped at the slice count). */
  rule: SeriesRule
}

/** Slice order: position, then InstanceNumber, then the given order (stable). Returns a new array. */
export function orderSlices<T extends Pick<SliceResult, 'slicePosition' | 'instanceNumber'>> (slices: readonly T[]): T[] {
  const key = (value: number | undefined): number => value ?? Number.POSITIVE_INFINITY
  return slices
    .map((slice, index) => ({ slice, index }))
    .sort((a, b) =>
      (key(a.slice.slicePosition) - key(b.slice.slicePosition)) ||
      (key(a.slice.instanceNumber) - key(b.slice.instanceNumber)) ||
      (a.index - b.index))
    .map(({ slice }) => slice)
}

function median (values: number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** adjacent[i]: whether ordered slice i follows slice i - 1 with no slice missing between them. */
function adjacency (ordered: readonly SliceResult[], gapFactor: number): boolean[] {
  const spacings: number[] = []
  for (let i = 1; i < ordered.length; i++) {
    const [a, b] = [ordered[i - 1].slicePosition, ordered[i].slicePosition]
    if (a !== undefined && b !== undefined && b - a > 0) spacings.push(b - a)
  }
  const spacing = median(spacings)
  return ordered.map((slice, i) => {
    if (i === 0) return false
    const previous = ordered[i - 1]
    if (spacing !== undefined && previous.slicePosition !== undefined && slice.slicePosition !== undefined) {
      return slice.slicePosition - previous.slicePosition <= gapFactor * spacing
    }
    if (previous.instanceNumber !== undefined && slice.instanceNumber !== undefined) {
      return slice.instanceNumber - previous.instanceNumber <= 1
    }
    return true
  })
}

/**
 * The conclusion of one series. `slices` may come in any order; indexes in the result refer to `orderSlices(slices)`.
 */
export function concludeSeries (slices: readonly SliceResult[], rule: Partial<SeriesRule> & Pick<SeriesRule, 'threshold'>): SeriesConclusion {
  const ordered = orderSlices(slices)
  const k = Math.max(1, Math.min(Math.floor(rule.minAdjacentSlices ?? DEFAULT_MIN_ADJACENT_SLICES), ordered.length))
  const applied: SeriesRule = { threshold: rule.threshold, minAdjacentSlices: k, gapFactor: rule.gapFactor ?? DEFAULT_GAP_FACTOR }
  if (ordered.length === 0) return { conclusion: 'Undetermined', positiveRanges: [], isolatedPositiveSlices: 0, rule: applied }

  const adjacent = adjacency(ordered, applied.gapFactor)
  // A run's length is the number of places it covers: two instances at one slice position (one image sent again under
  // another SOP Instance UID, a second reconstruction in the same series) are one place, and one positive image so
  // repeated made a run of two, the series Stone on a single slice.
  const runs: Array<{ first: number, last: number, places: number }> = []
  ordered.forEach((slice, i) => {
    if (slice.probability < applied.threshold) return
    const open = runs.at(-1)
    if (open !== undefined && open.last === i - 1 && adjacent[i]) {
      const previous = ordered[i - 1].slicePosition
      if (previous === undefined || slice.slicePosition === undefined || slice.slicePosition !== previous) open.places++
      open.last = i
    } else runs.push({ first: i, last: i, places: 1 })
  })
  const positiveRanges: PositiveRange[] = []
  let isolatedPositiveSlices = 0
  for (const { first, last, places } of runs) {
    const slices = last - first + 1
    if (places < k) { isolatedPositiveSlices += slices; continue }
    const [from, to] = [ordered[first], ordered[last]]
    positiveRanges.push({
      first,
      last,
      slices,
      ...(from.slicePosition === undefined || to.slicePosition === undefined ? {} : { fromPosition: from.slicePosition, toPosition: to.slicePosition }),
      ...(from.instanceNumber === undefined || to.instanceNumber === undefined ? {} : { fromInstanceNumber: from.instanceNumber, toInstanceNumber: to.instanceNumber }),
      maxProbability: Math.max(...ordered.slice(first, last + 1).map((s) => s.probability))
    })
  }
  let maxProbabilityIndex = 0
  ordered.forEach((slice, i) => { if (slice.probability > ordered[maxProbabilityIndex].probability) maxProbabilityIndex = i })
  return {
    conclusion: positiveRanges.length > 0 ? 'Stone' : 'Normal',
    positiveRanges,
    isolatedPositiveSlices,
    maxProbability: ordered[maxProbabilityIndex].probability,
    maxProbabilityIndex,
    rule: applied
  }
}

/** A study's verdict from its series: Stone if any series is Stone, Normal if any is Normal, else Undetermined. */
export function concludeStudy (series: ReadonlyArray<Pick<SeriesConclusion, 'conclusion'>>): SeriesConclusionValue {
  if (series.some((s) => s.conclusion === 'Stone')) return 'Stone'
  if (series.some((s) => s.conclusion === 'Normal')) return 'Normal'
  return 'Undetermined'
}
