import { concludeSeries, type SeriesConclusion, type SliceResult } from '../inference/series-conclusion.js'
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
 * The classified DICOM files grouped by SeriesInstanceUID, each series concluded by the same rule as the service's
 * study results: a multi-frame object's frames are slices of its series. Failed files are absent, so a slice that
 * failed breaks a run of positive slices rather than joining it. One SOP instance is one slice, as the service counts
 * an instance sent again once: the same instance in two files (two encodings, a second export) would otherwise be two
 * adjacent slices, and one positive slice a Stone series. The later file in path order replaces the earlier.
 */
export function concludeSeriesOf (results: FileResult[], minAdjacentSlices?: number): SeriesSummary[] {
  const groups = new Map<string, { studyInstanceUid?: string, threshold: number, slices: Map<string, SliceResult> }>()
  for (const [index, result] of results.entries()) {
    if (failed(result) || result.dicom?.seriesInstanceUid === undefined) continue
    const { seriesInstanceUid, studyInstanceUid, sopInstanceUid, instanceNumber, slicePosition } = result.dicom
    const group = groups.get(seriesInstanceUid) ?? { studyInstanceUid, threshold: result.threshold, slices: new Map() }
    const frames = result.frames ?? [{ slicePosition, prediction: result.prediction, probabilities: result.probabilities }]
    for (const [frameIndex, frame] of frames.entries()) {
      group.slices.set(`${sopInstanceUid ?? `file ${index}`} frame ${frameIndex}`, {
        ...(frame.slicePosition === undefined ? {} : { slicePosition: frame.slicePosition }),
        ...(instanceNumber === undefined || result.frames !== undefined ? {} : { instanceNumber }),
        probability: frame.probabilities.Stone,
        prediction: frame.prediction
      })
    }
    groups.set(seriesInstanceUid, group)
  }
  return [...groups].map(([seriesInstanceUid, { studyInstanceUid, threshold, slices }]) => ({
    seriesInstanceUid,
    ...(studyInstanceUid === undefined ? {} : { studyInstanceUid }),
    slices: slices.size,
    conclusion: concludeSeries([...slices.values()], { threshold, ...(minAdjacentSlices === undefined ? {} : { minAdjacentSlices }) })
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
  const ranges = conclusion.positiveRanges.map((range) => `${range.slices} adjacent slices ${where(range)} (max P ${range.maxProbability.toFixed(3)})`)
  const found = ranges.length === 0 ? '' : `, ${ranges.join('; ')}`
  const isolated = conclusion.isolatedPositiveSlices === 0 ? '' : `, ${conclusion.isolatedPositiveSlices} isolated positive slice(s) not counted`
  const max = conclusion.maxProbability === undefined ? '' : `, max P(Stone) ${conclusion.maxProbability.toFixed(3)}`
  return `series ${seriesInstanceUid}: ${conclusion.conclusion}${found}; ${slices} slice(s)${max}${isolated}, rule: k=${conclusion.rule.minAdjacentSlices} adjacent slices at P >= ${conclusion.rule.threshold}`
}
