import type { PredictionFields } from './prediction.js'

export interface BatchEntry {
  index: number
  result?: PredictionFields
  error?: { code: string }
}

export interface SeriesConclusion {
  studyInstanceUid?: string
  seriesInstanceUid: string
  slices: number
  conclusion: 'Stone' | 'Normal'
  /** The slices classified Stone (probability at or above the threshold), most probable first. */
  stoneSlices: Array<{ index: number, sopInstanceUid?: string, probability: number }>
}

export interface BatchSummary {
  files: number
  succeeded: number
  failed: number
  counts: { Normal: number, Stone: number }
  /** One per DICOM SeriesInstanceUID among the successful files: Stone if any of its slices is Stone. */
  series: SeriesConclusion[]
}

export function summarizeBatch (entries: BatchEntry[]): BatchSummary {
  const counts = { Normal: 0, Stone: 0 }
  const series = new Map<string, SeriesConclusion>()
  for (const { index, result } of entries) {
    if (result === undefined) continue
    counts[result.prediction] += 1
    const uid = result.dicom?.seriesInstanceUid
    if (uid === undefined) continue
    const entry = series.get(uid) ?? { studyInstanceUid: result.dicom?.studyInstanceUid, seriesInstanceUid: uid, slices: 0, conclusion: 'Normal', stoneSlices: [] }
    entry.slices += 1
    if (result.prediction === 'Stone') {
      entry.conclusion = 'Stone'
      entry.stoneSlices.push({ index, sopInstanceUid: result.dicom?.sopInstanceUid, probability: result.probabilities.Stone })
    }
    series.set(uid, entry)
  }
  for (const entry of series.values()) entry.stoneSlices.sort((a, b) => b.probability - a.probability)
  const succeeded = counts.Normal + counts.Stone
  return { files: entries.length, succeeded, failed: entries.length - succeeded, counts, series: [...series.values()] }
}
