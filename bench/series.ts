/**
 * How fast one client sends a series: the CLI (`kidney-stone predict --url`, one slice per request, one at a
 * time, as a hospital script does) against this service started by bin/serve with a given rate limit.
 *   npx tsx bench/series.ts [--slices 300] [--series 1] [--rate-limit 3000] [--dicom]
 * Prints requests per second and per minute, and how many times the CLI waited for a 429's Retry-After:
 * the figures behind the RATE_LIMIT_MAX default (docs/operations.md, "Rate limit").
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Command } from 'commander'
import { CT_KIDNEY } from './images.js'
import { REPO, startService } from './processes.js'

const DICOM_SLICE = join(CT_KIDNEY, '../dicom/ct1-unc-explicit-little-endian.dcm')

const opts = new Command('series')
  .option('--slices <n>', 'slices in one series', '300')
  .option('--series <n>', 'series sent one after the other', '1')
  .option('--rate-limit <n>', 'RATE_LIMIT_MAX of the service (requests per client and minute)', '3000')
  .option('--dicom', 'send a 512x512 CT DICOM file as every slice instead of the ct-kidney JPEG slices')
  .parse()
  .opts<{ slices: string, series: string, rateLimit: string, dicom?: boolean }>()

/** One series: consecutive train slices of ct-kidney (its manifest lists them series by series). */
async function seriesSlices (count: number): Promise<string[]> {
  if (opts.dicom === true) return Array.from({ length: count }, () => DICOM_SLICE)
  const rows = (await readFile(join(CT_KIDNEY, 'manifest.csv'), 'utf8')).trim().split('\n').slice(1)
  const train = rows.map((row) => row.split(',')[0]).filter((path) => path.startsWith('train/'))
  if (train.length < count) throw new Error(`only ${train.length} train slices`)
  return train.slice(0, count).map((path) => join(CT_KIDNEY, path))
}

const slices = await seriesSlices(Number(opts.slices))
const files = Array.from({ length: Number(opts.series) }, () => slices).flat()
const work = await mkdtemp(join(tmpdir(), 'kidney-bench-series-'))
const service = await startService({ RATE_LIMIT_MAX: opts.rateLimit, UPLOAD_DIR: join(work, 'uploads') }, join(work, 'service.log'))
try {
  const started = performance.now()
  const run = await promisify(execFile)(process.execPath, [join(REPO, 'bin/kidney-stone.js'), 'predict', ...files,
    '--url', service.url, '--format', 'csv'], { maxBuffer: 256 * 1024 * 1024 }).catch((error: { stdout: string, stderr: string }) => error)
  const seconds = (performance.now() - started) / 1000
  const waits = run.stderr.split('\n').filter((line) => line.includes('the service answered')).length
  const perSecond = files.length / seconds
  console.log(`${files.length} slices (${opts.series} x ${opts.slices}, ${opts.dicom === true ? 'DICOM 512x512' : 'ct-kidney JPEG'}), ` +
    `RATE_LIMIT_MAX=${opts.rateLimit}: ${seconds.toFixed(1)} s including CLI start, ${perSecond.toFixed(1)} requests/s ` +
    `= ${Math.round(perSecond * 60)} per minute; ${waits} Retry-After wait(s); ${run.stderr.trim().split('\n').at(-1)}; ` +
    `load average ${loadavg()[0].toFixed(1)}`)
} finally {
  await service.stop()
  await rm(work, { recursive: true, force: true })
}
