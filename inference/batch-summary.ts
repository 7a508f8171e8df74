import type { PredictionFields } from './prediction.js'
import { concludeSeries, instanceSlices, type SeriesConclusion, type SliceResult } from './series-conclusion.js'

export interface BatchEntry {
  index: number
  result?: PredictionFields
  error?: { code: string }
}

/** One slice among classified files: the file it came from (its index) and, for a multi-frame object, its frame (1-based). */
export interface FileSlice extends SliceResult {
  index: number
  frame?: number
  sopInstanceUid?: string
}

/** The slices of one DICOM series among classified files, concluded by the series rule (series-conclusion.ts). */
export interface FileSeries {
  seriesInstanceUid: string
  studyInstanceUid?: string
  slices: FileSlice[]
  conclusion: SeriesConclusion
}

/**
 * The classified DICOM files grouped by SeriesInstanceUID, each series concluded by the same rule as the service's
 * study results (GET /studies): a multi-frame object's frames are slices of its series. Failed files (undefined) are
 * absent, so a slice that failed breaks a run of positive slices rather than joining it. One SOP instance is one
 * slice, as the study results count an instance sent again once: the same instance in two files (two encodings, a
 * second export) would otherwise be two adjacent slices, and one positive slice a Stone series. The first file
 * counts: both callers classify each instance once (dicom-node/repeated-instances.ts), a later file of it sharing the
 * first's result or refused, so the slice names the file that was classified. POST /predict/batch and the CLI use it
 * alike.
 */
export function concludeFileSeries (results: ReadonlyArray<PredictionFields | undefined>, minAdjacentSlices?: number): FileSeries[] {
  const groups = new Map<string, { studyInstanceUid?: string, threshold: number, slices: Map<string, FileSlice> }>()
  for (const [index, result] of results.entries()) {
    if (result?.dicom?.seriesInstanceUid === undefined) continue
    const { seriesInstanceUid, studyInstanceUid, sopInstanceUid, instanceNumber, slicePosition } = result.dicom
    const group = groups.get(seriesInstanceUid) ?? { studyInstanceUid, threshold: result.threshold, slices: new Map() }
    const instance = {
      ...(slicePosition === undefined ? {} : { slicePosition }),
      ...(instanceNumber === undefined ? {} : { instanceNumber }),
      probability: result.probabilities.Stone,
      prediction: result.prediction
    }
    for (const [frameIndex, slice] of instanceSlices(instance, result.frames).entries()) {
      const key = `${sopInstanceUid ?? `file ${index}`} frame ${frameIndex}`
      if (!group.slices.has(key)) group.slices.set(key, { index, ...(sopInstanceUid === undefined ? {} : { sopInstanceUid }), ...slice })
    }
    groups.set(seriesInstanceUid, group)
  }
  return [...groups].map(([seriesInstanceUid, { studyInstanceUid, threshold, slices }]) => ({
    seriesInstanceUid,
    ...(studyInstanceUid === undefined ? {} : { studyInstanceUid }),
    slices: [...slices.values()],
    conclusion: concludeSeries([...slices.values()], { threshold, ...(minAdjacentSlices === undefined ? {} : { minAdjacentSlices }) })
  }))
}

export interface BatchSeries {
  studyInstanceUid?: string
  seriesInstanceUid: string
  /** Slices classified: a multi-frame object counts its frames. */
  slices: number
  conclusion: 'Stone' | 'Normal'
  /** The positive slices (P(Stone) at or above the threshold), most probable first. */
  stoneSlices: Array<{ index: number, frame?: number, sopInstanceUid?: string, probability: number }>
}

export interface BatchSummary {
  files: number
  succeeded: number
  failed: number
  counts: { Normal: number, Stone: number }
  /** One per DICOM SeriesInstanceUID among the successful files, concluded as GET /studies concludes a series. */
  series: BatchSeries[]
}

/**
 * `minAdjacentSlices`: k of the series rule (SERIES_MIN_ADJACENT_SLICES). `counts` count files; a SOP instance's
 * slices are its first file's: a later file of it in a batch either shares that file's result (the same bytes) or is
 * 409 (dicom-node/repeated-instances.ts), so `stoneSlices` name the file that was classified.
 */
export function summarizeBatch (entries: BatchEntry[], minAdjacentSlices?: number): BatchSummary {
  const counts = { Normal: 0, Stone: 0 }
  for (const { result } of entries) if (result !== undefined) counts[result.prediction] += 1
  const series = concludeFileSeries(entries.map(({ result }) => result), minAdjacentSlices).map(({ studyInstanceUid, seriesInstanceUid, slices, conclusion }) => ({
    ...(studyInstanceUid === undefined ? {} : { studyInstanceUid }),
    seriesInstanceUid,
    slices: slices.length,
    // Only classified slices make a series here, so the rule never answers Undetermined.
    conclusion: conclusion.conclusion as BatchSeries['conclusion'],
    stoneSlices: slices.filter((slice) => slice.probability >= conclusion.rule.threshold)
      .sort((a, b) => b.probability - a.probability)
      .map(({ index, frame, sopInstanceUid, probability }) => ({ index, ...(frame === undefined ? {} : { frame }), ...(sopInstanceUid === undefined ? {} : { sopInstanceUid }), probability }))
  }))
  const succeeded = counts.Normal + counts.Stone
  return { files: entries.length, succeeded, failed: entries.length - succeeded, counts, series }
}
