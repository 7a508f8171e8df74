import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { Command } from 'commander'
import { loadConfig } from '../plugins/app/config.js'
import { fileUpload } from '../test/helper.js'
import { benchImageSets } from './images.js'
import { resultsStamp } from './report.js'
import { REPO, metric, probeLive, startService } from './processes.js'

const program = new Command('soak')
  .description('Drives the service with mixed real uploads over loopback and reports its RSS every 10 s')
  .option('--duration <s>', 'seconds of load', '600')
  // The service's RSS falls by several hundred MiB about 90 s after start (native start-up memory released; the JS
  // heap does not change), so the reference is taken after that.
  .option('--warmup <s>', 'seconds after which the reference RSS is taken', '120')
  .option('--connections <n>', 'concurrent connections (the load is bounded by this)', '4')
  .option('--hostile [fraction]', 'fraction of requests taken from the hostile-input corpus (test/hostile/corpus.ts, DICOM payload families included); 0.1 when given without a value')
  .option('--model <path>', 'ONNX model', loadConfig().modelPath)
  .option('--out <dir>', 'where the result is written', join(REPO, 'bench/results'))
  .parse()
const opts = program.opts<{ duration: string, warmup: string, connections: string, hostile?: string | true, model: string, out: string }>()
const duration = Number(opts.duration)
const warmup = Math.min(Number(opts.warmup), duration / 2)
const hostileFraction = opts.hostile === true ? 0.1 : Number(opts.hostile ?? 0)
if (!(hostileFraction >= 0 && hostileFraction < 1)) throw new Error('--hostile must be a fraction in [0, 1)')

interface Req { method: 'POST', path: string, headers: Record<string, string>, body: Buffer }

const valid: Req[] = (await benchImageSets()).flatMap((set) => set.bytes).map((bytes, i) => {
  const { payload, headers } = fileUpload(bytes, `slice-${i}.jpg`)
  return { method: 'POST', path: '/predict', headers, body: payload }
})

/** What the soak uses of test/hostile/corpus.ts (owned by the security tests). */
interface HostileCorpus {
  buildHostileCorpus: (limits: { maxPixels: number, maxFileBytes: number, maxFields: number, bodyLimitBytes: number }) =>
  Promise<Array<{ request: { method: 'POST', url: string, headers: Record<string, string>, payload: Buffer } }>>
}

/** The security corpus is loaded only when asked for, so the soak runs without it. */
async function hostileRequests (): Promise<Req[]> {
  const corpusModule: string = '../test/hostile/corpus.js'
  const corpus = await import(corpusModule).catch((error: unknown) => {
    throw new Error(`--hostile needs test/hostile/corpus.ts (buildHostileCorpus): ${(error as Error).message}`)
  }) as HostileCorpus
  const config = loadConfig()
  const cases = await corpus.buildHostileCorpus({
    maxPixels: config.maxPixels, maxFileBytes: config.maxFileBytes, maxFields: config.maxFields, bodyLimitBytes: config.bodyLimitBytes
  })
  return cases.map((c) => ({ method: c.request.method, path: c.request.url, headers: c.request.headers, body: c.request.payload }))
}

/** Valid uploads with every k-th request replaced by the next hostile case, so the mix is even over time. */
function mix (validRequests: Req[], hostile: Req[], fraction: number): Req[] {
  if (fraction === 0 || hostile.length === 0) return validRequests
  const total = Math.max(validRequests.length, Math.ceil(hostile.length / fraction))
  const every = 1 / fraction
  let h = 0
  return Array.from({ length: total }, (_, i) => (Math.floor((i + 1) / every) > Math.floor(i / every)
    ? hostile[h++ % hostile.length]
    : validRequests[i % validRequests.length]))
}

const requests = mix(valid, hostileFraction > 0 ? await hostileRequests() : [], hostileFraction)
const hostileCount = requests.filter((r) => !valid.includes(r)).length
const work = await mkdtemp(join(tmpdir(), 'kidney-soak-'))
const server = await startService({ MODEL_PATH: opts.model, UPLOAD_DIR: join(work, 'uploads') }, join(work, 'service.log'))

/** RSS of the process, and from its /metrics the V8 heap in use and the memory of Buffers/native objects it holds. */
interface Sample { seconds: number, rssMiB: number, heapUsedMiB: number, externalMiB: number, responses: number, requestsPerSecond: number }
const samples: Sample[] = []
const statuses: Record<string, number> = {}
let responses = 0
const startedAt = Date.now()
const sample = async (): Promise<void> => {
  const seconds = Math.round((Date.now() - startedAt) / 1000)
  const previous = samples.at(-1) ?? { seconds: 0, responses: 0 }
  const rssMiB = (await server.rssBytes()) / 1024 ** 2
  const exposition = await fetch(`${server.url}/metrics`).then(async (res) => await res.text()).catch(() => '')
  const heapUsedMiB = metric(exposition, 'nodejs_heap_size_used_bytes') / 1024 ** 2
  const externalMiB = metric(exposition, 'nodejs_external_memory_bytes') / 1024 ** 2
  const row = { seconds, rssMiB, heapUsedMiB, externalMiB, responses, requestsPerSecond: (responses - previous.responses) / Math.max(1, seconds - previous.seconds) }
  samples.push(row)
  process.stdout.write(`${String(seconds).padStart(5)} s  RSS ${rssMiB.toFixed(1).padStart(7)} MiB  heap ${heapUsedMiB.toFixed(1).padStart(6)} MiB  ` +
    `external ${externalMiB.toFixed(1).padStart(6)} MiB  ${String(responses).padStart(7)} responses  ${row.requestsPerSecond.toFixed(1)} req/s\n`)
}

/** /health/live, probed every half second for the whole run, each probe on a new connection: what an orchestrator sees. */
const live = { probes: 0, failures: 0, worstMs: 0, latenciesMs: [] as number[], failureReasons: {} as Record<string, number> }
let probing = true
const probeLoop = (async () => {
  while (probing) {
    const { outcome, ms } = await probeLive(server.url)
    live.probes++
    if (outcome !== '200') {
      live.failures++
      live.failureReasons[outcome] = (live.failureReasons[outcome] ?? 0) + 1
    }
    live.worstMs = Math.max(live.worstMs, ms)
    live.latenciesMs.push(ms)
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
})()

process.stdout.write(`soak: ${duration} s, ${opts.connections} connections, ${requests.length} requests in rotation ` +
  `(${hostileCount} hostile), service pid ${server.pid} at ${server.url}\n`)
await sample()
const timer = setInterval(() => { sample().catch(() => {}) }, 10_000)
let result: autocannon.Result
try {
  result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({ url: server.url, connections: Number(opts.connections), duration, requests, timeout: 30 },
      (error, res) => error != null ? reject(error) : resolve(res))
    instance.on('response', (_client, statusCode) => {
      responses++
      statuses[statusCode] = (statuses[statusCode] ?? 0) + 1
    })
  })
  clearInterval(timer)
  await sample()
} finally {
  clearInterval(timer)
  probing = false
  await probeLoop
  await server.stop()
  await rm(work, { recursive: true, force: true })
}

const serverErrors = Object.entries(statuses).filter(([status]) => Number(status) >= 500).reduce((sum, [, count]) => sum + count, 0)
const sortedLive = [...live.latenciesMs].sort((a, b) => a - b)
const liveP99Ms = sortedLive[Math.min(sortedLive.length - 1, Math.floor(sortedLive.length * 0.99))] ?? NaN
const reference = samples.find((s) => s.seconds >= warmup) ?? samples[0]
const end = samples.at(-1) as Sample
const growth = end.rssMiB / reference.rssMiB - 1
const summary = {
  date: new Date(startedAt).toISOString(),
  command: `npm run soak -- ${process.argv.slice(2).join(' ')}`.trim(),
  durationSeconds: duration,
  connections: Number(opts.connections),
  hostileFraction,
  requestsInRotation: requests.length,
  hostileInRotation: hostileCount,
  responses,
  statuses,
  serverErrors,
  liveProbes: live.probes,
  liveFailures: live.failures,
  liveFailureReasons: live.failureReasons,
  liveWorstMs: Number(live.worstMs.toFixed(1)),
  liveP99Ms: Number(liveP99Ms.toFixed(1)),
  connectionErrors: result.errors,
  timeouts: result.timeouts,
  warmupSeconds: warmup,
  rssAfterWarmupMiB: Number(reference.rssMiB.toFixed(1)),
  rssAtEndMiB: Number(end.rssMiB.toFixed(1)),
  rssGrowth: Number(growth.toFixed(4)),
  withinTenPercent: Math.abs(growth) <= 0.1,
  loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2))),
  samples
}
await mkdir(opts.out, { recursive: true })
const file = join(opts.out, `soak-${resultsStamp(summary.date)}.json`)
await writeFile(file, JSON.stringify(summary, null, 2) + '\n')
process.stdout.write(`\nstatuses ${JSON.stringify(statuses)}, ${serverErrors} x 5xx, connection errors ${result.errors}, timeouts ${result.timeouts}\n` +
  `/health/live: ${live.probes - live.failures}/${live.probes} answered 200${live.failures > 0 ? ` (others: ${JSON.stringify(live.failureReasons)})` : ''}, ` +
  `worst ${live.worstMs.toFixed(1)} ms, p99 ${liveP99Ms.toFixed(1)} ms\n` +
  `RSS after warm-up (${reference.seconds} s): ${reference.rssMiB.toFixed(1)} MiB; at end (${end.seconds} s): ${end.rssMiB.toFixed(1)} MiB; ` +
  `change ${(growth * 100).toFixed(1)} % (target within 10 %: ${summary.withinTenPercent ? 'MET' : 'NOT MET'})\nWritten: ${file}\n`)
