import type { PredictionFields } from '../inference/prediction.js'

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
