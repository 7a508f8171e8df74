import type { PredictionFields } from '../inference/prediction.js'
import type { SkipReason } from './collect-files.js'

export interface FileError {
  code: string
  message: string
  statusCode?: number
}

/** One line of output: the file and either its /predict fields or its typed error. */
export type FileResult = { file: string } & ((PredictionFields & { id?: string }) | { error: FileError })

export function failed (result: FileResult): result is { file: string, error: FileError } {
  return 'error' in result
}

const CSV_COLUMNS = [
  'file', 'prediction', 'confidence', 'probability_stone', 'probability_normal', 'threshold', 'confidence_band',
  'model', 'model_version', 'study_instance_uid', 'series_instance_uid', 'sop_instance_uid', 'error_code', 'error_message'
] as const

function csvCell (value: string | number | undefined): string {
  const text = value === undefined ? '' : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function csvRow (result: FileResult): Array<string | number | undefined> {
  if (failed(result)) return [result.file, ...Array(CSV_COLUMNS.length - 3).fill(undefined), result.error.code, result.error.message]
  return [
    result.file, result.prediction, result.confidence, result.probabilities.Stone, result.probabilities.Normal, result.threshold,
    result.confidenceBand, result.model.name, result.model.version,
    result.dicom?.studyInstanceUid, result.dicom?.seriesInstanceUid, result.dicom?.sopInstanceUid, undefined, undefined
  ]
}

export function formatResults (results: FileResult[], format: 'json' | 'csv'): string {
  if (format === 'json') return JSON.stringify(results, null, 2) + '\n'
  return [CSV_COLUMNS, ...results.map(csvRow)].map((row) => row.map(csvCell).join(',')).join('\n') + '\n'
}

/** "3 skipped (2 hidden, 1 DICOMDIR)", most frequent reason first, then by name; empty when nothing was skipped. */
export function skippedSummary (skipped: Map<SkipReason, number>): string {
  const total = [...skipped.values()].reduce((sum, count) => sum + count, 0)
  if (total === 0) return ''
  const reasons = [...skipped].sort(([a, countA], [b, countB]) => countB - countA || a.localeCompare(b))
    .map(([reason, count]) => `${count} ${reason}`)
  return `${total} skipped (${reasons.join(', ')})`
}

/** The closing line on stderr: "10 file(s): 4 classified, 6 failed; 3 skipped (2 hidden, 1 DICOMDIR)". */
export function summaryLine (results: FileResult[], skipped: Map<SkipReason, number>): string {
  const failures = results.filter(failed).length
  const counts = `${results.length} file(s): ${results.length - failures} classified, ${failures} failed`
  const skips = skippedSummary(skipped)
  return skips === '' ? counts : `${counts}; ${skips}`
}
