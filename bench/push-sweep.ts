// What one FHIR push sweep (PushQueue.enqueueFinal: which studies are final and not queued yet) costs in the store
// alone, PGlite, over a week of DICOM rows: `--studies` studies of `--slices` classified slices each, spread evenly over
// the last 7 days. Reports wall time and this process's CPU (PGlite's thread included) of a replica's first sweep and
// of the sweeps after it, every 5 s of the service's clock (the push's poll at SERIES_IDLE_SECONDS 30). `--base <dir>`
// runs the same against another checkout's store, to compare a change with it:
//   taskset -c 1 npx tsx bench/push-sweep.ts [--studies 300] [--slices 300] [--sweeps 5] [--base <dir>]
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { RecordStore } from '../records/store.js'

const { values: opts } = parseArgs({
  options: {
    studies: { type: 'string', default: '300' },
    slices: { type: 'string', default: '300' },
    sweeps: { type: 'string', default: '5' },
    base: { type: 'string' }
  }
})
const studies = Number(opts.studies)
const slices = Number(opts.slices)
const WEEK_MS = 7 * 86_400_000
const cam = { values: new Float32Array(2 * 14 * 14), dims: [2, 14, 14] as [number, number, number] }

async function fill (store: RecordStore, now: number): Promise<void> {
  for (let s = 0; s < studies; s++) {
    const study = `1.2.826.0.1.3680043.8.498.${s + 1}`
    const series = `${study}.1`
    // the newest study ends an hour ago: every study is final at the first sweep
    const start = now - WEEK_MS + (s / studies) * (WEEK_MS - 3_600_000)
    await Promise.all(Array.from({ length: slices }, async (_, i) => {
      const id = randomUUID()
      await store.savePrediction({
        id, caller: 'dicom:CT_SCANNER', route: 'DIMSE C-STORE', createdAt: new Date(start + i * 100),
        input: { sha256: '0'.repeat(64), bytes: 525_000, format: 'dicom' },
        dicom: { studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: `${series}.${i + 1}`, instanceNumber: i + 1, slicePosition: -i },
        model: { name: 'kidney-stone-cnn', version: '2.5.0', sha256: '0'.repeat(64), threshold: 0.2, temperature: 1 },
        prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, cam, answer: { id }
      })
    }))
  }
}

async function measure (name: string, repo: string): Promise<void> {
  const { RecordStore: Store } = await import(pathToFileURL(join(repo, 'records/store.ts')).href) as { RecordStore: typeof RecordStore }
  const dir = await mkdtemp(join(tmpdir(), 'kidney-push-sweep-bench-'))
  const { store } = await Store.open({ engine: 'pglite', dataDir: dir })
  try {
    const now = Date.now()
    await fill(store, now)
    for (let sweep = 0; sweep < Number(opts.sweeps); sweep++) {
      const cpu = process.cpuUsage()
      const started = performance.now()
      const queued = await store.pushes.enqueueFinal(30, new Date(now + sweep * 5_000))
      const { user, system } = process.cpuUsage(cpu)
      console.log(`${name}: sweep ${sweep + 1}: ${queued} studies queued, ${(performance.now() - started).toFixed(1)} ms, ` +
        `CPU ${((user + system) / 1000).toFixed(1)} ms`)
    }
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

console.log(`${studies} studies of ${slices} slices over 7 days (${studies * slices} rows), PGlite`)
await measure('this checkout', resolve('.'))
if (opts.base !== undefined) await measure('base', resolve(opts.base))
