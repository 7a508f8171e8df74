// What one study read costs in the store alone (RecordStore.readStudy without a caller, as a records:read-all
// GET /studies/{uid} and each FHIR push of a study call it; no HTTP): wall time, this process's CPU (all threads:
// PGlite's database thread included; `main` is the event loop's share) and the PostgreSQL server's (a throwaway
// cluster with the server's durable defaults), per read, in interleaved rounds (each round in another order). Two
// studies of realistic size, each written through the store: 3 series of 300 single-frame slices, and one series of
// 1,000 multi-frame objects of 300 frames (the slice bound, MAX_STUDY_ROWS, keeps the newest of them); and, as a
// PACS's study arrives after a workstation flooded its UID, `--flood` single-frame rows of an unlisted caller ahead of
// 3 series of 300 of the owner's; and `--refused-flood` instances of that caller refused under a study's UID (their
// refusals recorded, failed_instances) beside 3 series of 300 of the owner's, as a workstation sending what the service
// refuses (another modality, a corrupt export) does. Every store runs with STUDY_OWNERS naming the scanner, as production should. `--base <dir>`
// adds the variants `<engine>@base`, the same studies written and read by another checkout's store (its own databases,
// its own migrations), to compare a change with it in the same run; `--old-rows` adds `<engine>@old-rows`, this
// store reading rows as written before migration 0006 (their `slices` emptied: counted from their answers). Run it
// pinned to one core:
//   taskset -c 1 npx tsx bench/study-read.ts [--reads 20] [--rounds 3] [--engines pglite,postgres] [--flood 20000] [--refused-flood 20000] [--base <dir>] [--old-rows]
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { startPostgres } from '../test/helpers/postgres.js'
import { openPGlite } from '../records/pglite-driver.js'
import { openPostgres } from '../records/postgres-driver.js'
import { RecordStore, type StoreOptions } from '../records/store.js'
import type { FailedInstanceRecord, PredictionRecord } from '../records/record.js'
import { postgresCpuMs, processCpuMs, threadCpuMs } from './proc-cpu.js'
import { recordsOrder } from './records.js'
import { median } from './report.js'

const { values: opts } = parseArgs({
  options: {
    reads: { type: 'string', default: '20' },
    rounds: { type: 'string', default: '3' },
    engines: { type: 'string', default: 'pglite,postgres' },
    flood: { type: 'string', default: '20000' },
    'refused-flood': { type: 'string', default: '20000' },
    base: { type: 'string' },
    'old-rows': { type: 'boolean', default: false }
  }
})

type Store = Pick<RecordStore, 'savePrediction' | 'saveFailedInstance' | 'readStudy' | 'close'>
type Open = (options: StoreOptions) => Promise<{ store: Store }>

const CALLER = 'dicom:CT_SCANNER'
/** Sends under the scanner's study UIDs, and is not in STUDY_OWNERS. */
const UNLISTED = 'dicom:WORKSTATION'
const uid = (): string => `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`)}`
const probabilities = (): { Normal: number, Stone: number } => {
  const stone = Math.random() * 0.2
  return { Normal: 1 - stone, Stone: stone }
}
const cam = new Float32Array(2 * 14 * 14).map(() => Math.random() * 4 - 2)

/** One classified instance as the service records it: the answer echoes its DICOM place; `frames` makes it multi-frame. */
function record (study: string, series: string, instanceNumber: number, createdAt: Date, frames?: number, caller = CALLER): PredictionRecord {
  const id = randomUUID()
  const p = probabilities()
  const dicom = { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: uid(), instanceNumber, slicePosition: -instanceNumber * 1.25 }
  const model = { name: 'kidney-stone-cnn', version: '2.5.0' }
  const answer = {
    id,
    prediction: 'Normal',
    classIndex: 0,
    confidence: p.Normal,
    probabilities: p,
    confidenceBand: 'high',
    threshold: 0.2018,
    recommendations: ['No kidney stone detected on this slice.', 'A negative result on one slice does not exclude a stone elsewhere in the series.'],
    model,
    disclaimer: 'Decision support only, not a diagnosis: this result comes from an automated model reading a single 2D CT ' +
      'slice and must be reviewed by a qualified clinician together with the full study and the clinical context.',
    dicom,
    ...(frames === undefined
      ? {}
      : { frames: Array.from({ length: frames }, (_, i) => ({ frame: i + 1, slicePosition: -i * 1.25, prediction: 'Normal', probabilities: probabilities() })) })
  }
  return {
    id,
    caller,
    route: 'DIMSE C-STORE',
    createdAt,
    input: { sha256: 'a'.repeat(64), bytes: 526_000, format: 'dicom' },
    dicom,
    model: { ...model, sha256: 'b'.repeat(64), threshold: 0.2018, temperature: 1.3 },
    prediction: 'Normal',
    probabilities: p,
    confidenceBand: 'high',
    timings: { imageWait: 0.012, decode: 3.456, batchWait: 1.234, preprocess: 0.123, inference: 2.345 },
    cam: { values: cam, dims: [2, 14, 14] },
    answer
  }
}

/** The studies' records and refusals, in arrival order (a millisecond apart). */
function studies (flood: number, refusedFlood: number): { uids: Record<string, string>, records: PredictionRecord[], refusals: FailedInstanceRecord[] } {
  const flooded = `${flood} unlisted + 3x300`
  const refusedFlooded = `${refusedFlood} unlisted refused + 3x300`
  const uids: Record<string, string> = {
    'single-frame 3x300': uid(), 'multi-frame 1000x300': uid(), ...(flood > 0 ? { [flooded]: uid() } : {}), ...(refusedFlood > 0 ? { [refusedFlooded]: uid() } : {})
  }
  const since = Date.now() - 3_600_000
  const records: PredictionRecord[] = []
  const refusals: FailedInstanceRecord[] = []
  const at = (): Date => new Date(since + records.length + refusals.length)
  const singleFrames = (study: string): void => {
    for (let s = 0; s < 3; s++) {
      const series = uid()
      for (let i = 1; i <= 300; i++) records.push(record(study, series, i, at()))
    }
  }
  singleFrames(uids['single-frame 3x300'])
  const series = uid()
  for (let i = 1; i <= 1000; i++) records.push(record(uids['multi-frame 1000x300'], series, i, at(), 300))
  if (flood > 0) {
    const own = uid()
    for (let i = 1; i <= flood; i++) records.push(record(uids[flooded], own, i, at(), undefined, UNLISTED))
    singleFrames(uids[flooded])
  }
  if (refusedFlood > 0) {
    const study = uids[refusedFlooded]
    for (let i = 1; i <= refusedFlood; i++) {
      refusals.push({ caller: UNLISTED, route: 'DIMSE C-STORE', createdAt: at(), studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: uid(), status: 422, code: 'UNSUPPORTED_MODALITY' })
    }
    singleFrames(study)
    // the scanner's own: a structured report per series, refused for its SOP class
    for (let i = 1; i <= 3; i++) refusals.push({ caller: CALLER, route: 'DIMSE C-STORE', createdAt: at(), studyInstanceUid: study, sopInstanceUid: uid(), status: 422, code: 'UNSUPPORTED_SOP_CLASS' })
  }
  return { uids, records, refusals }
}

/** Empties the column migration 0006 added, as on rows written before it (the store is closed meanwhile). */
async function asBefore0006 (options: StoreOptions): Promise<void> {
  const driver = options.engine === 'pglite' ? await openPGlite(options.dataDir) : await openPostgres({ ...options, poolSize: 1 })
  await driver.query('UPDATE predictions SET slices = NULL')
  await driver.close()
}

const { uids, records, refusals } = studies(Number(opts.flood), Number(opts['refused-flood']))
const opens: Record<string, Open> = { '': RecordStore.open }
if (opts['old-rows']) opens['@old-rows'] = RecordStore.open
if (opts.base !== undefined) {
  opens['@base'] = ((await import(pathToFileURL(join(resolve(opts.base), 'records/store.ts')).href)) as { RecordStore: { open: Open } }).RecordStore.open
}
const work = await mkdtemp(join(tmpdir(), 'study-read-'))
const pgServer = await startPostgres({ durable: true })
const stores = new Map<string, { store: Store, port?: number }>()
try {
  for (const engine of opts.engines.split(',')) {
    for (const [suffix, open] of Object.entries(opens)) {
      const name = `${engine}${suffix}`
      const tag = name.replace(/[@-]/g, '_')
      const options: StoreOptions = engine === 'pglite'
        ? { engine: 'pglite', dataDir: join(work, tag), studyOwners: [CALLER] }
        : { engine: 'postgres', url: await pgServer.createDatabase(`study_read_${tag}`), poolSize: 4, timeoutMs: 60_000, migrationTimeoutMs: 600_000, studyOwners: [CALLER] }
      let { store } = await open(options)
      for (let i = 0; i < records.length; i += 64) await Promise.all(records.slice(i, i + 64).map(async (r) => await store.savePrediction(r)))
      for (let i = 0; i < refusals.length; i += 64) await Promise.all(refusals.slice(i, i + 64).map(async (r) => await store.saveFailedInstance(r)))
      if (suffix === '@old-rows') {
        await store.close()
        await asBefore0006(options)
        store = (await open(options)).store
      }
      stores.set(name, { store, ...(engine === 'postgres' ? { port: pgServer.port } : {}) })
      for (const study of Object.values(uids)) await store.readStudy(study) // warm-up
    }
  }
  const reads = Number(opts.reads)
  const results = new Map<string, Array<{ wall: number, cpu: number, main: number, server: number }>>()
  for (let round = 0; round < Number(opts.rounds); round++) {
    for (const [name, { store, port }] of recordsOrder([...stores], round)) {
      for (const [label, study] of Object.entries(uids)) {
        const server0 = port === undefined ? 0 : await postgresCpuMs(port)
        const cpu0 = await processCpuMs(process.pid)
        const main0 = (await threadCpuMs(process.pid)).get(process.pid) ?? NaN
        const t0 = performance.now()
        let slices = 0
        let instances = 0
        let refused = 0
        for (let i = 0; i < reads; i++) {
          const rows = await store.readStudy(study)
          instances = rows.instances.length
          refused = rows.failures.length
          slices = rows.instances.reduce((sum, row) => sum + (row.frames?.length ?? 1), 0)
        }
        const wall = (performance.now() - t0) / reads
        const cpu = (await processCpuMs(process.pid) - cpu0) / reads
        const main = (((await threadCpuMs(process.pid)).get(process.pid) ?? NaN) - main0) / reads
        const server = port === undefined ? 0 : (await postgresCpuMs(port) - server0) / reads
        const row = { wall, cpu, main, server }
        const key = `${name} ${label}`
        results.set(key, [...results.get(key) ?? [], row])
        console.log(`round ${round} ${key}: ${instances} instances, ${slices} slices, ${refused} refused; wall ${wall.toFixed(1)} ms/read, ` +
          `process CPU ${cpu.toFixed(1)} (main thread ${main.toFixed(1)}), PostgreSQL server ${server.toFixed(1)}`)
      }
    }
  }
  const medians = new Map<string, { wall: number, cpu: number }>()
  for (const [key, rows] of results) {
    const of = (pick: (r: typeof rows[number]) => number): string => median(rows.map(pick)).toFixed(1)
    medians.set(key, { wall: median(rows.map((r) => r.wall)), cpu: median(rows.map((r) => r.cpu + r.server)) })
    console.log(`${key}: median of ${rows.length} rounds of ${reads} reads: wall ${of((r) => r.wall)} ms/read, process CPU ` +
      `${of((r) => r.cpu)} (main thread ${of((r) => r.main)}) + PostgreSQL server ${of((r) => r.server)} = ${of((r) => r.cpu + r.server)} ms CPU/read`)
  }
  // this store over each variant, study by study
  for (const [key, variant] of medians) {
    const [name, ...label] = key.split(' ')
    const ours = medians.get([name.replace(/@.*/, ''), ...label].join(' '))
    if (!name.includes('@') || ours === undefined) continue
    console.log(`${key.replace('@', ' over @')}: wall ${(ours.wall / variant.wall).toFixed(2)}, CPU ${(ours.cpu / variant.cpu).toFixed(2)}`)
  }
} finally {
  for (const { store } of stores.values()) await store.close()
  await pgServer.destroy()
  await rm(work, { recursive: true, force: true })
}
