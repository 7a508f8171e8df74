import { execFile } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { AppConfig } from '../plugins/app/config.js'
import { writeCtSeries } from './ct-series.js'
import { measureLimit } from './limit.js'
import { freePort, startService } from './processes.js'

export interface DicomSeriesRound {
  round: number
  /** storescu start to exit: association, 300 C-STOREs each answered after its classification and record, release. */
  storescuSeconds: number
  /**
   * The same series split into this many parts, each pushed by its own storescu over its own association at once, as
   * a PACS with parallel associations sends (one calling AE): seconds from the first start to the last exit, by count.
   */
  parallelSeconds: Record<string, number>
  /** The same slices at the in-process limit (Classifier, no network, no records), as seconds for the series. */
  limitSeconds: number
  limitImagesPerSecond: number
  /** Instances the study result counted as classified afterwards (GET /studies/{uid}). */
  classified: number
  loadAverage1m: number
}

export interface DicomSeriesResult {
  slices: number
  rounds: DicomSeriesRound[]
  /** Medians over rounds. */
  storescuSeconds: number
  limitSeconds: number
  /** storescu seconds / limit seconds, per round, median. */
  ratio: number
  /** One association's seconds over k associations' seconds, per round, median, by k. */
  speedup: Record<string, number>
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/**
 * The DICOM series row of `npm run bench`: a `slices`-slice CT series (the shared 512x512 CT slice, new UIDs and
 * positions per slice) pushed with dcmtk's storescu to the service started as users start it (bin/serve, records on
 * PGlite, DICOM_PORT set), end to end, next to the in-process limit for the same slices, alternating in each round.
 */
export async function measureDicomSeries (config: AppConfig, work: string, options: { slices: number, rounds: number, limitSeconds: number, associations: number[] }): Promise<DicomSeriesResult> {
  const dicomPort = await freePort()
  // the association counts measured may all come from one calling AE, as from one PACS
  const most = Math.max(1, ...options.associations)
  const service = await startService({ DICOM_PORT: String(dicomPort), MODEL_PATH: config.modelPath, UPLOAD_DIR: join(work, 'dicom-uploads'), DATA_DIR: join(work, 'dicom-data'),
    DICOM_MAX_ASSOCIATIONS: String(Math.max(8, most)), DICOM_MAX_ASSOCIATIONS_PER_AE: String(Math.max(6, most)) },
    join(work, 'dicom-service.log'), 'service-dicom')
  const rounds: DicomSeriesRound[] = []
  try {
    for (let round = 0; round < options.rounds; round++) {
      const dir = join(work, `dicom-series-${round}`)
      const series = await writeCtSeries(dir, { slices: options.slices })
      const bytes = await Promise.all(series.files.map(async (file) => await readFile(file)))
      const storescu = async (files: string[]): Promise<void> => {
        await promisify(execFile)('storescu', ['-aec', 'KIDNEYSTONE', '-aet', 'BENCH', '127.0.0.1', String(dicomPort), ...files], { maxBuffer: 64 * 1024 * 1024 })
      }
      const push = async (associations = 1): Promise<number> => {
        const started = performance.now()
        // every k-th slice to each association, as a PACS hands out the instances of a series
        await Promise.all(Array.from({ length: associations }, async (_, part) => await storescu(series.files.filter((_, i) => i % associations === part))))
        return (performance.now() - started) / 1000
      }
      const limit = async (): Promise<number> => (await measureLimit(config, bytes, config.batchMaxSize, options.limitSeconds)).imagesPerSecond
      // Alternate which goes first, so a slow stretch of the machine does not always fall on the same one.
      let storescuSeconds: number
      let limitImagesPerSecond: number
      if (round % 2 === 0) {
        storescuSeconds = await push()
        limitImagesPerSecond = await limit()
      } else {
        limitImagesPerSecond = await limit()
        storescuSeconds = await push()
      }
      // the parallel pushes send the same instances again (counted once); in another order each round
      const parallelSeconds: Record<string, number> = {}
      const counts = options.associations.filter((k) => k > 1)
      for (const k of counts.map((_, i) => counts[(i + round) % counts.length])) parallelSeconds[k] = await push(k)
      const study = await (await fetch(`${service.url}/studies/${series.studyInstanceUid}`)).json() as { series: Array<{ instances: { classified: number } }> }
      const result: DicomSeriesRound = {
        round,
        storescuSeconds,
        parallelSeconds,
        limitSeconds: options.slices / limitImagesPerSecond,
        limitImagesPerSecond,
        classified: study.series.reduce((sum, s) => sum + s.instances.classified, 0),
        loadAverage1m: Number(loadavg()[0].toFixed(2))
      }
      rounds.push(result)
      process.stderr.write(`dicom series round ${round}: storescu ${storescuSeconds.toFixed(1)} s for ${options.slices} slices ` +
        `(${result.classified} classified), in-process limit ${result.limitSeconds.toFixed(1)} s (${limitImagesPerSecond.toFixed(1)} images/s)` +
        `${Object.entries(parallelSeconds).map(([k, sec]) => `, ${k} associations ${sec.toFixed(1)} s`).join('')}, load ${result.loadAverage1m}\n`)
      await rm(dir, { recursive: true, force: true })
    }
  } finally {
    await service.stop()
  }
  return {
    slices: options.slices,
    rounds,
    storescuSeconds: median(rounds.map((r) => r.storescuSeconds)),
    limitSeconds: median(rounds.map((r) => r.limitSeconds)),
    ratio: median(rounds.map((r) => r.storescuSeconds / r.limitSeconds)),
    speedup: Object.fromEntries(options.associations.filter((k) => k > 1).map((k) => [k, median(rounds.map((r) => r.storescuSeconds / r.parallelSeconds[k]))]))
  }
}

export function dicomSeriesLine (result: DicomSeriesResult): string {
  return `DICOM series: ${result.slices} slices pushed with storescu, end to end ${result.storescuSeconds.toFixed(1)} s ` +
    `(${(result.slices / result.storescuSeconds).toFixed(1)} slices/s); the in-process limit for the same slices ${result.limitSeconds.toFixed(1)} s; ` +
    `storescu / limit ${result.ratio.toFixed(2)}` +
    `${Object.entries(result.speedup).map(([k, x]) => `; ${k} parallel associations ${median(result.rounds.map((r) => r.parallelSeconds[k])).toFixed(1)} s, ${x.toFixed(2)}x one`).join('')}` +
    ` (medians of ${result.rounds.length} rounds)`
}
