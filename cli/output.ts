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

const MAX_FINDINGS = 3
/** finding1_x ... finding3_score: the boxes of a Stone answer (uploaded-image pixels), strongest first; empty cells beyond. */
const FINDING_COLUMNS = Array.from({ length: MAX_FINDINGS }, (_, i) => ['x', 'y', 'width', 'height', 'score'].map((key) => `finding${i + 1}_${key}`)).flat()

// The finding columns come last, so that columns of earlier versions keep their positions.
const CSV_COLUMNS = [
  'file', 'prediction', 'confidence', 'probability_stone', 'probability_normal', 'threshold', 'confidence_band',
  'model', 'model_version', 'study_instance_uid', 'series_instance_uid', 'sop_instance_uid', 'error_code', 'error_message',
  ...FINDING_COLUMNS
]
const ERROR_COLUMNS = 2

/**
 * A text cell that a spreadsheet would take for a formula (it starts with = + - @, a tab or a carriage return) gets
 * a leading apostrophe, which spreadsheets show as text (OWASP's CSV injection advice). File names are the caller's:
 * an export folder on a shared drive holding `=HYPERLINK("http://…")_1.jpg` made the CSV a clinician opens in Excel
 * run it. Numbers are never text here, so a negative one keeps its sign.
 */
function csvCell (value: string | number | undefined): string {
  const text = value === undefined ? '' : typeof value === 'string' && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

function csvRow (result: FileResult): Array<string | number | undefined> {
  const noFindings: undefined[] = Array(FINDING_COLUMNS.length).fill(undefined)
  if (failed(result)) {
    return [result.file, ...Array(CSV_COLUMNS.length - 1 - ERROR_COLUMNS - FINDING_COLUMNS.length).fill(undefined), result.error.code, result.error.message, ...noFindings]
  }
  const findings = (result.findings ?? []).slice(0, MAX_FINDINGS).flatMap(({ box, score }) => [box.x, box.y, box.width, box.height, score])
  return [
    result.file, result.prediction, result.confidence, result.probabilities.Stone, result.probabilities.Normal, result.threshold,
    result.confidenceBand, result.model.name, result.model.version,
    result.dicom?.studyInstanceUid, result.dicom?.seriesInstanceUid, result.dicom?.sopInstanceUid, undefined, undefined,
    ...findings, ...noFindings.slice(findings.length)
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
