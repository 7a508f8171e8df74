import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Command, InvalidArgumentError, Option } from 'commander'
import cliProgress from 'cli-progress'
import { DEFAULT_RETRY } from '../client/index.js'
import type { WindowSource } from '../inference/dicom/decode-dicom.js'
import { DEFAULT_MIN_ADJACENT_SLICES } from '../inference/series-conclusion.js'
import { collectFiles, readInput } from './collect-files.js'
import { failed, formatResults, skippedSummary, summaryLine, type FileError, type FileResult } from './output.js'
import { eachInstanceOnce, inProcessPredictor, remotePredictor, type FilePredictor } from './predictors.js'
import { concludeSeriesOf, seriesLine } from './series.js'

const DEFAULT_MODEL = fileURLToPath(new URL('../model/kidney-stone-cnn.onnx', import.meta.url))

interface PredictOptions {
  url?: string
  apiKey?: string
  apiKeyHeader: string
  token?: string
  maxTries: number
  maxWait: number
  model: string
  threads: number
  maxPixels: number
  windowCenter?: number
  windowWidth?: number
  windowSource: WindowSource
  maxFrames: number
  minAdjacentSlices: number
  seriesOut?: string
  format: 'json' | 'csv'
  out?: string
  progress: boolean
}

function integer (min: number) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!Number.isInteger(parsed) || parsed < min) throw new InvalidArgumentError(`expected an integer >= ${min}`)
    return parsed
  }
}

function number (value: string): number {
  const parsed = Number(value)
  if (!Number.isFinite(parsed)) throw new InvalidArgumentError('expected a number')
  return parsed
}

function predictorFor (options: PredictOptions): Promise<FilePredictor> | FilePredictor {
  if (options.url !== undefined) {
    const auth = { apiKey: options.apiKey, apiKeyHeader: options.apiKeyHeader, token: options.token }
    return remotePredictor(options.url, auth, {
      maxTries: options.maxTries,
      maxWaitMs: options.maxWait * 1_000,
      onRetry: ({ status, waitMs, nextTry, maxTries }) => {
        process.stderr.write(`kidney-stone: the service answered ${status}; waiting ${waitMs / 1_000} s for try ${nextTry} of ${maxTries}\n`)
      }
    })
  }
  if ((options.windowCenter === undefined) !== (options.windowWidth === undefined)) {
    throw new InvalidArgumentError('--window-center and --window-width go together')
  }
  return inProcessPredictor({
    modelPath: options.model,
    maxPixels: options.maxPixels,
    threads: options.threads,
    dicomWindow: options.windowCenter === undefined || options.windowWidth === undefined ? undefined : { center: options.windowCenter, width: options.windowWidth },
    dicomWindowSource: options.windowSource,
    dicomMaxFrames: options.maxFrames
  })
}

async function predictCommand (paths: string[], options: PredictOptions): Promise<void> {
  const { files, skipped } = await collectFiles(paths)
  if (files.length === 0) {
    const skips = skippedSummary(skipped)
    throw new Error(`no JPEG, PNG or DICOM file found in ${paths.join(', ')}${skips === '' ? '' : `; ${skips}`}`)
  }
  const predictor = eachInstanceOnce(await predictorFor(options))
  // The bar goes to stderr and only when stdout is a terminal: piped or redirected output stays clean.
  const bar = options.progress && process.stdout.isTTY === true
    ? new cliProgress.SingleBar({ stream: process.stderr, format: '{bar} {value}/{total} files | {file}', hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined
  bar?.start(files.length, 0, { file: '' })
  const results: FileResult[] = []
  // Credentials the service refused once it refuses for every file: a folder of 300 slices is not sent 300 times.
  let refusal: { file: string, error: FileError } | undefined
  try {
    for (const file of files) {
      const bytes = refusal === undefined ? await readInput(file) : undefined
      const result: FileResult = refusal !== undefined
        ? { file, error: { code: 'NOT_SENT', message: `not sent: the service refused the credentials for ${refusal.file} (${refusal.error.code})` } }
        : typeof bytes === 'string'
          ? { file, error: { code: 'READ_ERROR', message: bytes } }
          : await predictor.predict(file, bytes as Buffer)
      if (failed(result) && CREDENTIAL_REFUSALS.has(result.error.statusCode ?? 0)) refusal = result
      results.push(result)
      bar?.increment({ file })
    }
  } finally {
    bar?.stop()
    await predictor.close()
  }
  const text = formatResults(results, options.format)
  if (options.out !== undefined) await writeFile(options.out, text)
  else process.stdout.write(text)
  const series = concludeSeriesOf(results, options.minAdjacentSlices)
  for (const summary of series) process.stderr.write(seriesLine(summary) + '\n')
  if (options.seriesOut !== undefined) await writeFile(options.seriesOut, JSON.stringify(series, null, 2) + '\n')
  const hint = credentialsHint(results, options)
  if (hint !== undefined) process.stderr.write(hint + '\n')
  process.stderr.write(summaryLine(results, skipped) + '\n')
  if (results.some(failed)) process.exitCode = 1
}

/** Answers that the service gives every file sent with these credentials: 401 (none or not accepted), 403 (no predict scope). */
const CREDENTIAL_REFUSALS = new Set([401, 403])

/** The service's 401 says what to send in HTTP terms (a header); a user of this command needs the flag that sends it. */
function credentialsHint (results: FileResult[], options: PredictOptions): string | undefined {
  if (!results.some((result) => failed(result) && result.error.statusCode === 401)) return undefined
  return options.apiKey === undefined && options.token === undefined
    ? 'the service asks for credentials: give an API key with --api-key (or KIDNEY_STONE_API_KEY), or a bearer token with --token (or KIDNEY_STONE_TOKEN)'
    : 'the service did not accept the credentials given: check the key or token (and --api-key-header, when the service reads the key from another header)'
}

export function buildProgram (): Command {
  const program = new Command('kidney-stone')
    .description('Kidney stone detection on CT slices (JPEG, PNG, DICOM), in this process or against a running service.')
  program.command('predict')
    .description('Classify files, or every JPEG/PNG/DICOM file found recursively in folders. ' +
      'Exit code 0 when every file was classified, 1 when any failed or on a usage error.')
    .argument('<paths...>', 'files and/or folders')
    .option('--url <url>', 'base URL of a running service (e.g. http://127.0.0.1:3000); without it the model runs in this process')
    .addOption(new Option('--api-key <key>', 'API key for --url (service AUTH_MODE api-key or any)').env('KIDNEY_STONE_API_KEY'))
    .option('--api-key-header <name>', 'header carrying the API key', 'x-api-key')
    .addOption(new Option('--token <jwt>', 'bearer token for --url (service AUTH_MODE jwt or any)').env('KIDNEY_STONE_TOKEN'))
    .option('--max-tries <n>', 'with --url: tries per file when the service answers 429 or 503 with Retry-After (1: never retry)', integer(1), DEFAULT_RETRY.maxTries)
    .option('--max-wait <seconds>', 'with --url: longest Retry-After waited for; a longer one fails the file at once', integer(0), DEFAULT_RETRY.maxWaitMs / 1_000)
    .addOption(new Option('--model <path>', 'ONNX model for in-process mode (its .json sidecar must sit next to it)').env('MODEL_PATH').default(DEFAULT_MODEL))
    .option('--threads <n>', 'onnxruntime threads in in-process mode', integer(1), 2)
    .option('--max-pixels <n>', 'largest width x height accepted in in-process mode', integer(1), 40_000_000)
    .option('--window-center <hu>', 'in-process: overrides the model\'s DICOM input window centre (its sidecar\'s input.window, else 40)', number)
    .option('--window-width <hu>', 'in-process: overrides the model\'s DICOM input window width (else 400); with --window-center', integer(1))
    .addOption(new Option('--window-source <source>', 'in-process: model = the model\'s window whatever a file carries; file = a file\'s own window when it has one')
      .choices(['model', 'file']).default('model'))
    .option('--max-frames <n>', 'in-process: frames of one multi-frame DICOM object classified at most', integer(1), 300)
    .option('--min-adjacent-slices <k>', 'series conclusion: adjacent slices at or above the threshold that make a series Stone', integer(1), DEFAULT_MIN_ADJACENT_SLICES)
    .option('--series-out <file>', 'also write the series conclusions (JSON) to this file')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'csv']).default('json'))
    .option('--out <file>', 'write the results to this file instead of stdout')
    .option('--no-progress', 'never show the progress bar (it is shown only when stdout is a terminal)')
    .addHelpText('after', `
Output: JSON is an array with one object per file: "file" and either the /predict fields (prediction,
confidence, probabilities, threshold, ..., "dicom" UIDs for DICOM files) or "error": { code, message }.
CSV has one row per file with the same facts, error_code/error_message filled for failures.

Series: DICOM files (and the frames of a multi-frame object) are grouped by SeriesInstanceUID, ordered by slice
position, one slice per SOP instance, and each series is concluded on
stderr by the service's rule: Stone when at least k adjacent slices have P(Stone) at or above the model
threshold (--min-adjacent-slices, default 2), with the slice range and max P. A SOP instance is classified
once, as in one POST /predict/batch request: a later file of it with the same bytes gets the first file's result,
with other bytes the error DUPLICATE_SOP_INSTANCE.

Folders: files are taken by content (JPEG, PNG, DICOM with or without preamble) or by name (.jpg .jpeg .png
.dcm .dicom .ima, any case); such a file that cannot be classified is a failed row, never left out. Skipped:
DICOMDIR, hidden files (.DS_Store, ._*), anything else (.txt, .json, ...); stderr's closing line counts
classified, failed and skipped files, the skipped ones by reason.

Examples:
  kidney-stone predict scans/ --format csv --out results.csv
  kidney-stone predict slice.dcm --url http://127.0.0.1:3000 --api-key "$KEY"`)
    .action(predictCommand)
  return program
}

/** Runs the command line; failures print one line to stderr and set exit code 1 (no stack trace). */
export async function main (argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv).catch((error: unknown) => {
    process.stderr.write(`kidney-stone: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
  })
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main(process.argv)
