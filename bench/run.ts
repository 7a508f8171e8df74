import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem, tmpdir, type as osType, release } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Command } from 'commander'
import { loadConfig } from '../plugins/app/config.js'
import { renderChart } from './chart.js'
import { dicomSeriesLine, measureDicomSeries } from './dicom-series.js'
import { benchImageSets, type ImageSet } from './images.js'
import { measureLimit, type LimitResult } from './limit.js'
import { drive } from './load.js'
import { pinServicesTo, REPO, metric, startBaseline, startService, type RunningServer } from './processes.js'
import { NO_RECORDS, RECORDS_PGLITE, RECORDS_POSTGRES, recordsCostFor, recordsOrder, startRecordsContenders } from './records.js'
import { ceilingFor, ceilingLines, median, medianRun, medianTable, resultsStamp, targetLines, targetsFor, type LimitRun, type ServerRun } from './report.js'

const program = new Command('bench')
  .description('In-process limit vs this service vs the Flask + PyTorch baseline, on real ct-kidney images, in interleaved rounds')
  .option('--rounds <n>', 'rounds; each measures every contender once per image set and connection count', '3')
  .option('--duration <s>', 'seconds per load run', '10')
  .option('--limit-seconds <s>', 'seconds per in-process limit run in each round', '6')
  .option('--scan-seconds <s>', 'seconds per batch size when choosing the limit\'s batch size', '3')
  .option('--connections <list>', 'concurrent connections', '1,8,32')
  .option('--batch-sizes <list>', 'batch sizes tried for the in-process limit', '1,2,4,8,16,32')
  .option('--model <path>', 'ONNX model (sidecar .json and PyTorch state dict .pt next to it)', loadConfig().modelPath)
  .option('--checkpoint <path>', 'PyTorch state dict for the baseline (default: the model path with .pt)')
  .option('--out <dir>', 'where results are written', join(REPO, 'bench/results'))
  .option('--records-only', 'only the records comparison: /predict at 8 connections with records off, on PGlite and on PostgreSQL')
  .option('--dicom-series-only', 'only the DICOM series row: a series pushed with storescu vs the in-process limit for the same slices')
  .option('--dicom-slices <n>', 'slices of the DICOM series row', '300')
  .option('--dicom-associations <list>', 'the DICOM series row also pushed over this many parallel associations at once (one calling AE), e.g. 2,4,6,8', '')
  .option('--records-connections <n>', 'connections of the records comparison (the target is set at 8)', '8')
  .option('--service-cpus <list>', 'with --records-only: the services on these CPUs (taskset), this bench, its load generator and the PostgreSQL server on the others')
  .parse()
const opts = program.opts<{ rounds: string, duration: string, limitSeconds: string, scanSeconds: string, connections: string, batchSizes: string, model: string, checkpoint?: string, out: string, recordsOnly?: boolean, dicomSeriesOnly?: boolean, dicomSlices: string, dicomAssociations: string, serviceCpus?: string, recordsConnections: string }>()
const recordsOnly = opts.recordsOnly === true
/** The records comparison runs at one connection count: 8 by default, the issue's target. */
const RECORDS_CONNECTIONS = Number(opts.recordsConnections)
const list = (value: string): number[] => value.split(',').map(Number)
const rounds = Number(opts.rounds)
const seconds = Number(opts.duration)
const connectionLevels = list(opts.connections)
const config = { ...loadConfig(), modelPath: opts.model }
if (opts.serviceCpus !== undefined) {
  // only the records comparison: the limit and the baseline would share the bench's CPUs with the load generator
  if (!recordsOnly) throw new Error('--service-cpus goes with --records-only')
  pinServicesTo(list(opts.serviceCpus))
}
const THREADS = 2 // the machine's cores: the budget both servers get
/** The commit measured, and whether the working tree differed from it (undefined outside a git checkout). */
async function sourceVersion (): Promise<{ commit: string, uncommittedChanges: boolean } | undefined> {
  const git = async (...args: string[]): Promise<string> => (await promisify(execFile)('git', args, { cwd: REPO })).stdout.trim()
  try {
    return { commit: await git('rev-parse', 'HEAD'), uncommittedChanges: (await git('status', '--porcelain', '--untracked-files=no')) !== '' }
  } catch {
    return undefined
  }
}
const load1m = (): number => Number(loadavg()[0].toFixed(2))

async function driveOnce (server: RunningServer, round: number, set: ImageSet, connections: number): Promise<ServerRun> {
  const scrape = async (): Promise<string | undefined> => server.name !== 'baseline'
    ? await fetch(`${server.url}/metrics`).then(async (res) => await res.text())
    : undefined
  const before = await scrape()
  const cpuBefore = await server.cpuSeconds()
  const result = await drive(server.url, set.bytes, connections, seconds)
  const cpuMsPerRequest = (await server.cpuSeconds() - cpuBefore) * 1000 / result.responses
  const after = await scrape()
  const meanBatchSize = before !== undefined && after !== undefined
    ? (metric(after, 'kidney_batch_size_sum') - metric(before, 'kidney_batch_size_sum')) /
      (metric(after, 'kidney_batch_size_count') - metric(before, 'kidney_batch_size_count'))
    : undefined
  const loadAverage1m = load1m()
  process.stderr.write(`round ${round} ${server.name} ${set.name} c=${connections}: ${result.requestsPerSecond.toFixed(1)} req/s, ` +
    `p50 ${result.latencyMs.p50.toFixed(0)} ms, p99 ${result.latencyMs.p99.toFixed(0)} ms, errors ${result.errors}, ` +
    `${cpuMsPerRequest.toFixed(2)} CPU ms/request, load generator ${result.loadGeneratorCores.toFixed(2)} cores, load ${loadAverage1m}\n`)
  return { round, imageSet: set.name, ...result, cpuMsPerRequest, meanBatchSize, loadAverage1m }
}

const started = new Date()
// Read before the run, so that edits made while it runs cannot be credited to the commit.
const codeVersion = await sourceVersion()
const loadStart = loadavg()
const sets = await benchImageSets()
const work = await mkdtemp(join(tmpdir(), 'kidney-bench-'))
await mkdir(opts.out, { recursive: true })
const stamp = resultsStamp(started)
const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim()
const dicomSeriesOptions = { slices: Number(opts.dicomSlices), rounds, limitSeconds: Number(opts.limitSeconds), associations: opts.dicomAssociations === '' ? [] : list(opts.dicomAssociations) }

if (opts.dicomSeriesOnly === true) {
  const dicomSeries = await measureDicomSeries(config, work, dicomSeriesOptions)
  await rm(work, { recursive: true, force: true })
  const file = join(opts.out, `dicom-series-${stamp}.json`)
  const load = { loadAverageAtStart: loadStart.map((v) => Number(v.toFixed(2))), loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2))) }
  await writeFile(file, JSON.stringify({ date: started.toISOString(), command, code: codeVersion, machine: { cpus: cpus().length, node: process.version, ...load }, dicomSeries }, null, 2) + '\n')
  process.stdout.write(`\n${dicomSeriesLine(dicomSeries)}\nLoad average ${load.loadAverageAtStart.join('/')} at start, ${load.loadAverageAtEnd.join('/')} at end.\nWritten: ${file}\n`)
  process.exit(0)
}

// 1. The limit's batch size, chosen once per image set by a short scan; the rounds then measure only that size,
// so the reported limit is not the best of several noisy samples.
const scan: Record<string, LimitResult[]> = {}
const bestBatch: Record<string, number> = {}
for (const set of recordsOnly ? [] : sets) {
  scan[set.name] = []
  for (const batchSize of list(opts.batchSizes)) {
    const result = await measureLimit(config, set.bytes, batchSize, Number(opts.scanSeconds))
    scan[set.name].push(result)
    process.stderr.write(`scan ${set.name} batch ${batchSize}: ${result.imagesPerSecond.toFixed(1)} images/s, load ${load1m()}\n`)
  }
  bestBatch[set.name] = scan[set.name].reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a)).batchSize
}

// 2. Both servers stay up for the whole run; in each round every contender is measured on each image set, so a
// slow or fast stretch of this VM falls on all three. The order of the two servers alternates between rounds.
// The service as users start it: records on the embedded PGlite store (its own DATA_DIR here).
const service = await startService({ MODEL_PATH: opts.model, UPLOAD_DIR: join(work, 'service-uploads'), DATA_DIR: join(work, 'service-data') }, join(work, 'service.log'))
const records = await startRecordsContenders({ MODEL_PATH: opts.model }, work).catch(async (error: unknown) => { await service.stop(); throw error })
const baseline = recordsOnly
  ? undefined
  : await startBaseline({
    model: opts.model, checkpoint: opts.checkpoint, threads: THREADS, uploadDir: join(work, 'baseline-uploads')
  }, join(work, 'baseline.log')).catch(async (error: unknown) => { await Promise.all([service.stop(), records.stop()]); throw error })
const limitRuns: LimitRun[] = []
const serviceRuns: ServerRun[] = []
const baselineRuns: ServerRun[] = []
const recordsRuns: Record<string, ServerRun[]> = { [NO_RECORDS]: [], [RECORDS_PGLITE]: [], [RECORDS_POSTGRES]: [] }
const recordsVariants: Array<[string, RunningServer]> = [[NO_RECORDS, records.off], [RECORDS_PGLITE, service], [RECORDS_POSTGRES, records.postgres]]
try {
  for (const server of [service, records.off, records.postgres, ...(baseline === undefined ? [] : [baseline])]) await drive(server.url, sets[0].bytes, 8, 3)
  for (let round = 0; round < rounds; round++) {
    for (const set of sets) {
      // records off, on PGlite and on PostgreSQL, back to back: their ratios come from minutes of the same VM
      for (const [variant, server] of recordsOrder(recordsVariants, round)) {
        recordsRuns[variant].push(await driveOnce(server, round, set, RECORDS_CONNECTIONS))
      }
      if (baseline === undefined) continue
      const limit = await measureLimit(config, set.bytes, bestBatch[set.name], Number(opts.limitSeconds))
      const loadAverage1m = load1m()
      limitRuns.push({ round, imageSet: set.name, ...limit, loadAverage1m })
      process.stderr.write(`round ${round} limit ${set.name} batch ${limit.batchSize}: ${limit.imagesPerSecond.toFixed(1)} images/s, ` +
        `${limit.cpuMsPerImage.toFixed(2)} CPU ms/image, load ${loadAverage1m}\n`)
      for (const server of round % 2 === 0 ? [service, baseline] : [baseline, service]) {
        for (const connections of connectionLevels) {
          (server === service ? serviceRuns : baselineRuns).push(await driveOnce(server, round, set, connections))
        }
      }
    }
  }
} finally {
  await Promise.all([service.stop(), records.stop(), baseline?.stop()])
}
// The DICOM series row, on its own service process once the others are stopped.
const dicomSeries = recordsOnly ? undefined : await measureDicomSeries(config, work, dicomSeriesOptions)
await rm(work, { recursive: true, force: true })
const recordsCost = Object.fromEntries(sets.map((set) => [set.name, recordsCostFor(rounds, set.name, recordsRuns)]))
const recordsTable = medianTable(sets.map((s) => s.name), [RECORDS_CONNECTIONS], [],
  Object.entries(recordsRuns).map(([variant, runs]) => [`service, ${variant}`, runs]))
const recordsLines = `Records at ${RECORDS_CONNECTIONS} connections (medians of ${rounds} rounds; the three measured back to back in each):\n\n` +
  `${recordsTable}\n\nRecording cost (throughput with records / without, within each round, median over rounds):\n` +
  `${targetLines(recordsCost).map((l) => `- ${l}`).join('\n')}\n`

const targets = Object.fromEntries(sets.map((set) => [set.name, targetsFor(rounds, set.name, serviceRuns, baselineRuns, limitRuns)]))
const ceilings = Object.fromEntries(sets.map((set) => [set.name, ceilingFor(rounds, set.name, baselineRuns, limitRuns)]))
const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  memoryGiB: Math.round(totalmem() / 1024 ** 3),
  os: `${osType()} ${release()}`,
  node: process.version,
  loadAverageAtStart: loadStart.map((v) => Number(v.toFixed(2))),
  loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2)))
}
const settings = {
  threadBudget: opts.serviceCpus === undefined
    ? `${THREADS} cores for each contender, one measured at a time; the load generator runs on the same cores`
    : `services on CPUs ${opts.serviceCpus} (taskset, as many onnxruntime threads); the bench, its load generator and the PostgreSQL server on the others`,
  service: {
    ORT_INTRA_OP_THREADS: opts.serviceCpus === undefined ? config.intraOpThreads : list(opts.serviceCpus).length,
    ORT_INTER_OP_THREADS: config.interOpThreads,
    ORT_GRAPH_OPTIMIZATION: config.graphOptimization,
    BATCH_MAX_SIZE: config.batchMaxSize,
    BATCH_MAX_DELAY_US: config.batchMaxDelayUs,
    BATCH_MAX_QUEUE: config.batchMaxQueue,
    SHARP_CONCURRENCY: config.sharpConcurrency,
    RATE_LIMIT_MAX: 0
  },
  baseline: { torchThreads: THREADS, OMP_NUM_THREADS: THREADS, server: 'Flask threaded development server (app.run)' },
  rounds,
  recordsConnections: RECORDS_CONNECTIONS,
  loadSecondsPerRun: seconds,
  limitSecondsPerRun: Number(opts.limitSeconds),
  scanSecondsPerBatchSize: Number(opts.scanSeconds),
  limitBatchSize: bestBatch
}

if (recordsOnly) {
  const file = join(opts.out, `records-${stamp}.json`)
  await writeFile(file, JSON.stringify({ date: started.toISOString(), command, code: codeVersion, machine, settings, records: recordsRuns, recordsCost }, null, 2) + '\n')
  process.stdout.write(`\n${recordsLines}\nMachine: ${machine.cpus} x ${machine.cpuModel}; load average ${machine.loadAverageAtStart.join('/')} at start, ` +
    `${machine.loadAverageAtEnd.join('/')} at end.\nWritten: ${file}\n`)
  process.exit(0)
}

const contenders: Array<[string, ServerRun[]]> = [['service (records on PGlite, the default)', serviceRuns], ['baseline Flask+PyTorch', baselineRuns]]
const table = medianTable(sets.map((s) => s.name), connectionLevels, limitRuns, contenders)

const results = {
  date: started.toISOString(),
  command,
  code: codeVersion,
  machine,
  settings,
  images: sets.map((s) => ({ name: s.name, description: s.description, count: s.files.length })),
  limitScan: scan,
  limit: limitRuns,
  service: serviceRuns,
  baseline: baselineRuns,
  targets,
  ceilings,
  records: recordsRuns,
  recordsCost,
  dicomSeries
}
await writeFile(join(opts.out, `${stamp}.json`), JSON.stringify(results, null, 2) + '\n')

const xs = connectionLevels
const colours = { service: '#1f77b4', baseline: '#d62728', limit: '#2ca02c' }
const series = (runs: ServerRun[], label: string, colour: string, value: (m: ReturnType<typeof medianRun>) => number) => sets.map((set, i) => ({
  label: `${label}, ${set.name}`,
  colour,
  dashed: i > 0,
  points: xs.map((c) => [c, value(medianRun(runs.filter((r) => r.imageSet === set.name && r.connections === c)))] as [number, number])
}))
const limitMedian = (set: ImageSet): number => median(limitRuns.filter((r) => r.imageSet === set.name).map((r) => r.imagesPerSecond))
const { svg, png } = await renderChart([
  {
    title: 'Throughput',
    yLabel: 'requests (images) per second',
    series: [
      ...sets.map((set, i) => ({ label: `in-process limit, ${set.name}`, colour: colours.limit, dashed: i > 0, points: xs.map((c) => [c, limitMedian(set)] as [number, number]) })),
      ...series(serviceRuns, 'service', colours.service, (m) => m.requestsPerSecond),
      ...series(baselineRuns, 'Flask+PyTorch', colours.baseline, (m) => m.requestsPerSecond)
    ]
  },
  {
    title: 'p99 latency',
    yLabel: 'milliseconds (log scale)',
    logY: true,
    series: [...series(serviceRuns, 'service', colours.service, (m) => m.p99), ...series(baselineRuns, 'Flask+PyTorch', colours.baseline, (m) => m.p99)]
  }
], xs, `${started.toISOString().slice(0, 16)}Z, ${machine.cpus} x ${machine.cpuModel ?? 'CPU'}, medians of ${rounds} interleaved rounds; solid: 384 px, dashed: originals`)
await writeFile(join(opts.out, `${stamp}.svg`), svg)
await writeFile(join(opts.out, `${stamp}.png`), png)

process.stdout.write(`\nMedians of ${rounds} interleaved rounds:\n\n${table}\n\nTargets at 8 connections (ratios within each round, median over rounds):\n` +
  `${targetLines(targets).map((l) => `- ${l}`).join('\n')}\n\n` +
  `Ceiling of the first target (in-process limit / baseline at 8 connections, within each round):\n` +
  `${ceilingLines(ceilings).map((l) => `- ${l}`).join('\n')}\n\n${recordsLines}\n` +
  `${dicomSeries === undefined ? '' : `${dicomSeriesLine(dicomSeries)}\n\n`}` +
  `Machine: ${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; ` +
  `load average ${machine.loadAverageAtStart.join('/')} at start, ${machine.loadAverageAtEnd.join('/')} at end.\n` +
  `Written: ${join(opts.out, stamp)}.json, .svg, .png\n`)
