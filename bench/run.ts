import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, totalmem, tmpdir, type as osType, release } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { loadConfig } from '../plugins/app/config.js'
import { renderChart } from './chart.js'
import { benchImageSets } from './images.js'
import { measureLimit, type LimitResult } from './limit.js'
import { drive, type LoadResult } from './load.js'
import { REPO, metric, startBaseline, startService, type RunningServer } from './processes.js'

const program = new Command('bench')
  .description('In-process limit vs this service vs the Flask + PyTorch baseline, on real ct-kidney images')
  .option('--duration <s>', 'seconds per load run', '15')
  .option('--limit-seconds <s>', 'seconds per in-process batch size', '8')
  .option('--connections <list>', 'concurrent connections', '1,8,32')
  .option('--batch-sizes <list>', 'batch sizes tried for the in-process limit', '1,2,4,8,16,32')
  .option('--model <path>', 'ONNX model (sidecar .json and PyTorch state dict .pt next to it)', loadConfig().modelPath)
  .option('--checkpoint <path>', 'PyTorch state dict for the baseline (default: the model path with .pt)')
  .option('--out <dir>', 'where results are written', join(REPO, 'bench/results'))
  .parse()
const opts = program.opts<{ duration: string, limitSeconds: string, connections: string, batchSizes: string, model: string, checkpoint?: string, out: string }>()
const list = (value: string): number[] => value.split(',').map(Number)
const seconds = Number(opts.duration)
const connectionLevels = list(opts.connections)
const config = { ...loadConfig(), modelPath: opts.model }
const THREADS = 2 // the machine's cores: the budget both servers get

interface ServerRun extends LoadResult { imageSet: string, meanBatchSize?: number, loadAverage1m: number }

async function driveAll (server: RunningServer, sets: Awaited<ReturnType<typeof benchImageSets>>): Promise<ServerRun[]> {
  const runs: ServerRun[] = []
  process.stderr.write(`${server.name}: warm-up\n`)
  await drive(server.url, sets[0].bytes, 8, 3)
  for (const set of sets) {
    for (const connections of connectionLevels) {
      const scrape = async (): Promise<string | undefined> => server.name === 'service'
        ? await fetch(`${server.url}/metrics`).then(async (res) => await res.text())
        : undefined
      const before = await scrape()
      const result = await drive(server.url, set.bytes, connections, seconds)
      const after = await scrape()
      const meanBatchSize = before !== undefined && after !== undefined
        ? (metric(after, 'kidney_batch_size_sum') - metric(before, 'kidney_batch_size_sum')) /
          (metric(after, 'kidney_batch_size_count') - metric(before, 'kidney_batch_size_count'))
        : undefined
      runs.push({ imageSet: set.name, ...result, meanBatchSize, loadAverage1m: Number(loadavg()[0].toFixed(2)) })
      process.stderr.write(`${server.name} ${set.name} c=${connections}: ${result.requestsPerSecond.toFixed(1)} req/s, ` +
        `p50 ${result.latencyMs.p50.toFixed(0)} ms, p99 ${result.latencyMs.p99.toFixed(0)} ms, errors ${result.errors}, ` +
        `load generator ${result.loadGeneratorCores.toFixed(2)} cores, load ${loadavg()[0].toFixed(1)}\n`)
    }
  }
  return runs
}

async function withServer<T> (start: () => Promise<RunningServer>, use: (server: RunningServer) => Promise<T>): Promise<T> {
  const server = await start()
  try {
    return await use(server)
  } finally {
    await server.stop()
  }
}

const started = new Date()
const loadStart = loadavg()
const sets = await benchImageSets()
const work = await mkdtemp(join(tmpdir(), 'kidney-bench-'))
await mkdir(opts.out, { recursive: true })

const limit: Record<string, { runs: Array<LimitResult & { loadAverage1m: number }>, best: LimitResult }> = {}
for (const set of sets) {
  const runs: Array<LimitResult & { loadAverage1m: number }> = []
  for (const batchSize of list(opts.batchSizes)) {
    runs.push({ ...await measureLimit(config, set.bytes, batchSize, Number(opts.limitSeconds)), loadAverage1m: Number(loadavg()[0].toFixed(2)) })
    process.stderr.write(`limit ${set.name} batch ${batchSize}: ${runs.at(-1)?.imagesPerSecond.toFixed(1)} images/s, load ${loadavg()[0].toFixed(1)}\n`)
  }
  limit[set.name] = { runs, best: runs.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a)) }
}

const serviceEnv = { MODEL_PATH: opts.model, UPLOAD_DIR: join(work, 'service-uploads') }
const service = await withServer(async () => await startService(serviceEnv, join(work, 'service.log')), async (s) => await driveAll(s, sets))
const baseline = await withServer(async () => await startBaseline({
  model: opts.model, checkpoint: opts.checkpoint, threads: THREADS, uploadDir: join(work, 'baseline-uploads')
}, join(work, 'baseline.log')), async (s) => await driveAll(s, sets))
await rm(work, { recursive: true, force: true })

const at = (runs: ServerRun[], set: string, c: number): ServerRun | undefined => runs.find((r) => r.imageSet === set && r.connections === c)
const targets = Object.fromEntries(sets.map((set) => {
  const s8 = at(service, set.name, 8)
  const b8 = at(baseline, set.name, 8)
  const vsBaseline = s8 !== undefined && b8 !== undefined ? s8.requestsPerSecond / b8.requestsPerSecond : NaN
  const vsLimit = s8 !== undefined ? s8.requestsPerSecond / limit[set.name].best.imagesPerSecond : NaN
  const p99OverP50 = s8 !== undefined ? s8.latencyMs.p99 / s8.latencyMs.p50 : NaN
  const errors = service.filter((r) => r.imageSet === set.name).reduce((n, r) => n + r.errors, 0)
  return [set.name, {
    serviceVsBaselineAt8: { value: vsBaseline, target: '>= 3', met: vsBaseline >= 3 },
    serviceVsLimitAt8: { value: vsLimit, target: '>= 0.8', met: vsLimit >= 0.8 },
    p99OverP50At8: { value: p99OverP50, target: '<= 2', met: p99OverP50 <= 2 },
    serviceErrors: { value: errors, target: '0', met: errors === 0 }
  }]
}))

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
  threadBudget: `${THREADS} cores for each contender, run one after the other; the load generator runs on the same cores`,
  service: {
    ORT_INTRA_OP_THREADS: config.intraOpThreads,
    ORT_INTER_OP_THREADS: config.interOpThreads,
    ORT_GRAPH_OPTIMIZATION: config.graphOptimization,
    BATCH_MAX_SIZE: config.batchMaxSize,
    BATCH_MAX_DELAY_US: config.batchMaxDelayUs,
    BATCH_MAX_QUEUE: config.batchMaxQueue,
    SHARP_CONCURRENCY: config.sharpConcurrency,
    RATE_LIMIT_MAX: 0
  },
  baseline: { torchThreads: THREADS, OMP_NUM_THREADS: THREADS, server: 'Flask threaded development server (app.run)' },
  loadSecondsPerRun: seconds,
  limitSecondsPerBatchSize: Number(opts.limitSeconds)
}

const fmt = (v: number | undefined, digits = 1): string => v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits)
const rows = [['images', 'contender', 'conns', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'mean batch', 'load generator cores']]
for (const set of sets) {
  const best = limit[set.name].best
  rows.push([set.name, `in-process limit (batch ${best.batchSize})`, '-', fmt(best.imagesPerSecond), '-', '-', '-', '0', String(best.batchSize), '0'])
  for (const [name, runs] of [['service', service], ['baseline Flask+PyTorch', baseline]] as const) {
    for (const r of runs.filter((run) => run.imageSet === set.name)) {
      rows.push([set.name, name, String(r.connections), fmt(r.requestsPerSecond), fmt(r.latencyMs.p50, 0), fmt(r.latencyMs.p95, 0),
        fmt(r.latencyMs.p99, 0), String(r.errors), fmt(r.meanBatchSize, 2), fmt(r.loadGeneratorCores, 2)])
    }
  }
}
const table = [
  `| ${rows[0].join(' | ')} |`,
  `|${rows[0].map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  ...rows.slice(1).map((row) => `| ${row.join(' | ')} |`)
].join('\n')
const targetLines = Object.entries(targets).flatMap(([set, t]) => Object.entries(t).map(([name, v]) =>
  `${set}: ${name} = ${typeof v.value === 'number' ? fmt(v.value, 2) : v.value} (target ${v.target}) ${v.met ? 'MET' : 'NOT MET'}`))

const stamp = started.toISOString().replace(/:\d\d\.\d+Z$/, 'Z').replace(/:/g, '')
const results = { date: started.toISOString(), command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(), machine, settings, images: sets.map((s) => ({ name: s.name, description: s.description, count: s.files.length })), limit, service, baseline, targets }
await writeFile(join(opts.out, `${stamp}.json`), JSON.stringify(results, null, 2) + '\n')

const xs = connectionLevels
const colours = { service: '#1f77b4', baseline: '#d62728', limit: '#2ca02c' }
const series = (runs: ServerRun[], label: string, colour: string, value: (r: ServerRun) => number) => sets.map((set, i) => ({
  label: `${label}, ${set.name}`, colour, dashed: i > 0, points: runs.filter((r) => r.imageSet === set.name).map((r) => [r.connections, value(r)] as [number, number])
}))
const { svg, png } = await renderChart([
  {
    title: 'Throughput',
    yLabel: 'requests (images) per second',
    series: [
      ...sets.map((set, i) => ({ label: `in-process limit, ${set.name}`, colour: colours.limit, dashed: i > 0, points: xs.map((c) => [c, limit[set.name].best.imagesPerSecond] as [number, number]) })),
      ...series(service, 'service', colours.service, (r) => r.requestsPerSecond),
      ...series(baseline, 'Flask+PyTorch', colours.baseline, (r) => r.requestsPerSecond)
    ]
  },
  {
    title: 'p99 latency',
    yLabel: 'milliseconds (log scale)',
    logY: true,
    series: [...series(service, 'service', colours.service, (r) => r.latencyMs.p99), ...series(baseline, 'Flask+PyTorch', colours.baseline, (r) => r.latencyMs.p99)]
  }
], xs, `${started.toISOString().slice(0, 16)}Z, ${machine.cpus} x ${machine.cpuModel ?? 'CPU'}, load average ${machine.loadAverageAtStart[0]} at start; solid: 384 px, dashed: originals`)
await writeFile(join(opts.out, `${stamp}.svg`), svg)
await writeFile(join(opts.out, `${stamp}.png`), png)

process.stdout.write(`\n${table}\n\nTargets at 8 connections:\n${targetLines.map((l) => `- ${l}`).join('\n')}\n\n` +
  `Machine: ${machine.cpus} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.os}, Node ${machine.node}; ` +
  `load average ${machine.loadAverageAtStart.join('/')} at start, ${machine.loadAverageAtEnd.join('/')} at end.\n` +
  `Written: ${join(opts.out, stamp)}.json, .svg, .png\n`)
