import { concludeFileSeries } from '../inference/batch-summary.js'
import type { SeriesConclusion } from '../inference/series-conclusion.js'
import { probabilityText } from '../inference/probability-text.js'
import { failed, type FileResult } from './output.js'

/** One DICOM series among the files of a run, with the service's series conclusion (inference/series-conclusion.ts). */
export interface SeriesSummary {
  seriesInstanceUid: string
  studyInstanceUid?: string
  /** Slices classified: files, or frames of a multi-frame object. */
  slices: number
  conclusion: SeriesConclusion
}

/**
 * The classified DICOM files grouped by series and concluded as POST /predict/batch and the study results conclude
 * them (inference/batch-summary.ts: frames are slices, one SOP instance is one slice). Of two files of one instance
 * the first in path order counts: the run classifies it once, as one POST /predict/batch request does
 * (eachInstanceOnce in predictors.ts).
 */
export function concludeSeriesOf (results: FileResult[], minAdjacentSlices?: number): SeriesSummary[] {
  return concludeFileSeries(results.map((result) => failed(result) ? undefined : result), minAdjacentSlices)
    .map(({ seriesInstanceUid, studyInstanceUid, slices, conclusion }) => ({
      seriesInstanceUid,
      ...(studyInstanceUid === undefined ? {} : { studyInstanceUid }),
      slices: slices.length,
      conclusion
    }))
}

function where (range: SeriesConclusion['positiveRanges'][number]): string {
  if (range.fromPosition !== undefined && range.toPosition !== undefined) return `at ${range.fromPosition.toFixed(1)} to ${range.toPosition.toFixed(1)} mm`
  if (range.fromInstanceNumber !== undefined && range.toInstanceNumber !== undefined) return `instances ${range.fromInstanceNumber} to ${range.toInstanceNumber}`
  return `slices ${range.first + 1} to ${range.last + 1} in order`
}

/**
 * One line per series for stderr, e.g. "series 1.2.3: Stone, 3 adjacent slices at -120.0 to -110.0 mm (max P 0.912);
 * 60 slices, max P(Stone) 0.912, rule k=2".
 */
export function seriesLine ({ seriesInstanceUid, slices, conclusion }: SeriesSummary): string {
  const ranges = conclusion.positiveRanges.map((range) => `${range.slices} adjacent slices ${where(range)} (max P ${probabilityText(range.maxProbability, conclusion.rule.threshold)})`)
  const found = ranges.length === 0 ? '' : `, ${ranges.join('; ')}`
  const isolated = conclusion.isolatedPositiveSlices === 0 ? '' : `, ${conclusion.isolatedPositiveSlices} isolated positive slice(s) not counted`
  const max = conclusion.maxProbability === undefined ? '' : `, max P(Stone) ${probabilityText(conclusion.maxProbability, conclusion.rule.threshold)}`
  return `series ${seriesInstanceUid}: ${conclusion.conclusion}${found}; ${slices} slice(s)${max}${isolated}, rule: k=${conclusion.rule.minAdjacentSlices} adjacent slices at P >= ${conclusion.rule.threshold}`
}
