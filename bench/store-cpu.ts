// What a prediction record costs in CPU in the store alone (RecordStore.savePrediction, no HTTP, no model): `clients`
// writers in a loop on PGlite and on a PostgreSQL server (a throwaway cluster with the server's durable defaults), in
// interleaved rounds (each round in another order); per record, this process's CPU (all threads: PGlite's included) and the server's processes'.
// The records are realistic (a Stone answer with its texts and a finding, a 2x14x14 CAM); --no-cam and --no-answer
// leave out the CAM or all of the answer but its id, to see what they cost. --dicom gives each record a DICOM place
// (studies of 300 slices, as a C-STORE's), which the study indexes (migrations 0005, 0007) are kept for; `--base <dir>`
// adds `<engine>@base`, the same writes through another checkout's store (its own databases, its own migrations), to
// compare a change with it in the same run. Run it pinned to one core:
//   taskset -c 1 npx tsx bench/store-cpu.ts [--records 2000] [--rounds 3] [--clients 2] [--engines pglite,postgres] [--dicom] [--base <dir>]
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startPostgres } from '../test/helpers/postgres.js'
import { RecordStore, type StoreOptions } from '../records/store.js'
import type { PredictionRecord } from '../records/record.js'
import { postgresCpuMs } from './proc-cpu.js'
import { recordsOrder } from './records.js'
import { median } from './report.js'

const { values: opts } = parseArgs({
  options: {
    records: { type: 'string', default: '2000' },
    clients: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    engines: { type: 'string', default: 'pglite,postgres' },
    'no-cam': { type: 'boolean', default: false },
    'no-answer': { type: 'boolean', default: false },
    dicom: { type: 'boolean', default: false },
    base: { type: 'string' }
  }
})

const cam = new Float32Array(2 * 14 * 14).map(() => Math.random() * 4 - 2)
// the shipped model's facts, so the record stays the size and shape of a real one when the model changes
const sidecar = JSON.parse(await readFile(new URL('../model/kidney-stone-cnn.json', import.meta.url), 'utf8')) as
  { name: string, version: string, threshold: number, temperature: number }
const shippedModel = { name: sidecar.name, version: sidecar.version }
const run = randomUUID().slice(0, 8)
let written = 0
function record (): PredictionRecord {
  const id = randomUUID()
  const pStone = Math.random()
  const answer = {
    id,
    prediction: 'Stone',
    classIndex: 1,
    confidence: pStone,
    probabilities: { Normal: 1 - pStone, Stone: pStone },
    confidenceBand: 'high',
    threshold: sidecar.threshold,
    recommendations: [
      'Findings are consistent with a kidney stone on this slice.',
      'Have a radiologist confirm the stone, its size and location on the full series.',
      'Correlate with symptoms and urinalysis; consider urology referral depending on size and obstruction.'
    ],
    model: shippedModel,
    disclaimer: 'Decision support only, not a diagnosis: this result comes from an automated model reading a single 2D CT ' +
      'slice and must be reviewed by a qualified clinician together with the full study and the clinical context.',
    findings: [{ box: { x: 120, y: 88, width: 48, height: 40 }, score: pStone }]
  }
  return {
    id,
    caller: 'anonymous',
    route: '/predict',
    requestId: 'req-' + id.slice(0, 8),
    createdAt: new Date(),
    input: { sha256: 'a'.repeat(64), bytes: 23456, format: 'jpeg', uploadFile: `${id}.jpg` },
    model: { ...shippedModel, sha256: 'b'.repeat(64), threshold: sidecar.threshold, temperature: sidecar.temperature },
    prediction: 'Stone',
    probabilities: { Normal: 1 - pStone, Stone: pStone },
    confidenceBand: 'high',
    timings: { imageWait: 0.012, decode: 3.456, batchWait: 1.234, preprocess: 0.123, inference: 2.345 },
    ...(opts.dicom ? { dicom: dicomPlace(written++) } : {}),
    ...(opts['no-cam'] ? {} : { cam: { values: cam, dims: [2, 14, 14] } }),
    answer: opts['no-answer'] ? { id } : answer
  }
}

/** The n-th slice of a run: 300 to a study, one series each. */
function dicomPlace (n: number): NonNullable<PredictionRecord['dicom']> {
  const study = `2.25.${parseInt(run, 16)}.${Math.floor(n / 300)}`
  return { studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: `${study}.1.${n % 300 + 1}`, instanceNumber: n % 300 + 1 }
}

type Store = Pick<RecordStore, 'savePrediction' | 'close'>
const opens: Record<string, (options: StoreOptions) => Promise<{ store: Store }>> = { '': RecordStore.open }
if (opts.base !== undefined) {
  opens['@base'] = ((await import(pathToFileURL(join(resolve(opts.base), 'records/store.ts')).href)) as { RecordStore: { open: typeof opens[string] } }).RecordStore.open
}
const work = await mkdtemp(join(tmpdir(), 'store-cpu-'))
const pgServer = await startPostgres({ durable: true })
try {
  const stores: Record<string, { store: Store, port?: number }> = {}
  for (const engine of opts.engines.split(',')) {
    for (const [suffix, open] of Object.entries(opens)) {
      const tag = `${engine}${suffix.replace('@', '_')}`
      stores[`${engine}${suffix}`] = engine === 'pglite'
        ? { store: (await open({ engine: 'pglite', dataDir: join(work, tag) })).store }
        : { store: (await open({ engine: 'postgres', url: await pgServer.createDatabase(`store_cpu_${tag}`), poolSize: 10, timeoutMs: 10_000, migrationTimeoutMs: 600_000 })).store, port: pgServer.port }
    }
  }
  const total = Number(opts.records)
  const clients = Number(opts.clients)
  const write = async (store: Store, n: number): Promise<void> => {
    let left = n
    await Promise.all(Array.from({ length: clients }, async () => {
      while (left-- > 0) await store.savePrediction(record())
    }))
  }
  for (const { store } of Object.values(stores)) await write(store, 500) // warm-up
  const results: Record<string, Array<{ self: number, pg: number, ms: number }>> = {}
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const [engine, { store, port }] of recordsOrder(Object.entries(stores), round)) {
      const c0 = process.cpuUsage()
      const p0 = port === undefined ? 0 : await postgresCpuMs(port)
      const t0 = performance.now()
      await write(store, total)
      const ms = performance.now() - t0
      const c = process.cpuUsage(c0)
      const p1 = port === undefined ? 0 : await postgresCpuMs(port)
      const row = { self: (c.user + c.system) / 1000 / total, pg: (p1 - p0) / total, ms: ms / total }
      ;(results[engine] ??= []).push(row)
      console.log(`round ${round} ${engine}: node ${row.self.toFixed(3)} ms/record, postgres ${row.pg.toFixed(3)}, wall ${row.ms.toFixed(3)}`)
    }
  }
  for (const [engine, rows] of Object.entries(results)) {
    console.log(`${engine}: median node ${median(rows.map((r) => r.self)).toFixed(3)} + postgres ${median(rows.map((r) => r.pg)).toFixed(3)} = ` +
      `${median(rows.map((r) => r.self + r.pg)).toFixed(3)} ms CPU/record, wall ${median(rows.map((r) => r.ms)).toFixed(3)} ms/record`)
  }
  for (const { store } of Object.values(stores)) await store.close()
} finally {
  await pgServer.destroy()
  await rm(work, { recursive: true, force: true })
}
