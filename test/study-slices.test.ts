import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { migrate, readMigrations } from '../records/migrate.js'
import { openPGlite } from '../records/pglite-driver.js'
import { openPostgres } from '../records/postgres-driver.js'
import { predictionRow, type PredictionRecord } from '../records/record.js'
import { RecordStore, type StoreOptions } from '../records/store.js'
import { MAX_STUDY_ROWS, type StudyInstanceRow } from '../records/study-rows.js'
import type { SqlDriver } from '../records/sql-driver.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { startPostgres } from './helpers/postgres.js'

// Since migration 0006 a prediction row holds its slices (a multi-frame object's frames, else 1), and readStudy's
// bound of MAX_STUDY_ROWS slices sums that column instead of parsing each row's answer. Rows written before keep
// NULL there and are counted from their answer: a study whose rows straddle the migration reads as if all were new.

const work = await mkdtemp(join(tmpdir(), 'kidney-study-slices-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const server = await startPostgres()
t.teardown(async () => await server.destroy())
const migrations = await readMigrations()
const BEFORE_SLICES = migrations.filter(({ version }) => version < 6)

const FRAMES = 300
const OBJECTS = 40
const since = Date.now() - 3_600_000

function record (study: string, n: number, frames?: number): PredictionRecord {
  const id = randomUUID()
  const answer = {
    id,
    prediction: 'Normal',
    probabilities: { Normal: 0.9, Stone: 0.1 },
    ...(frames === undefined ? {} : { frames: Array.from({ length: frames }, (_, i) => ({ frame: i + 1, slicePosition: i, prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 } })) })
  }
  return {
    id,
    caller: 'dicom:CT',
    route: 'DIMSE C-STORE',
    createdAt: new Date(since + n),
    input: { sha256: 'a'.repeat(64), bytes: 1, format: 'dicom' },
    dicom: { studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: `${study}.1.${n}`, instanceNumber: n, slicePosition: n },
    model: { name: 'm', version: '1', sha256: 'b'.repeat(64), threshold: 0.5, temperature: 1 },
    prediction: 'Normal',
    probabilities: { Normal: 0.9, Stone: 0.1 },
    confidenceBand: 'high',
    timings: {},
    answer
  }
}

/**
 * A study in arrival order: OBJECTS multi-frame objects and a single image, written before migration 0006, then a
 * single image and OBJECTS objects more. Newest first, the bound falls among the older objects.
 */
function study (uid: string): { before: PredictionRecord[], after: PredictionRecord[] } {
  const before = [...Array.from({ length: OBJECTS }, (_, i) => record(uid, i, FRAMES)), record(uid, OBJECTS)]
  const after = [record(uid, OBJECTS + 1), ...Array.from({ length: OBJECTS }, (_, i) => record(uid, OBJECTS + 2 + i, FRAMES))]
  return { before, after }
}

/** What a read returns but the row's own id and UIDs, so that two studies of the same rows compare equal. */
const content = (rows: StudyInstanceRow[]): unknown[] => rows.map(({ id, series_instance_uid: series, sop_instance_uid: sop, ...rest }) => rest)

const engines: Array<{ engine: string, options: () => Promise<StoreOptions>, driver: (options: StoreOptions) => Promise<SqlDriver> }> = [
  {
    engine: 'pglite',
    options: async () => ({ engine: 'pglite', dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-'))) }),
    driver: async (options) => await openPGlite((options as { dataDir: string }).dataDir)
  },
  {
    engine: 'postgres',
    options: async () => ({ engine: 'postgres', url: await server.createDatabase(`slices_${Date.now()}`), poolSize: 2, timeoutMs: 10_000, migrationTimeoutMs: 10_000 }),
    driver: async (options) => await openPostgres({ ...(options as { url: string, timeoutMs: number }), poolSize: 1 })
  }
]

for (const { engine, options: makeOptions, driver: openDriver } of engines) {
  t.test(`${engine}: rows written before migration 0006 and after it read together as rows all written after`, async (t) => {
    const options = await makeOptions()
    const mixed = study('2.25.1001')
    const driver = await openDriver(options)
    await migrate(driver, BEFORE_SLICES)
    // the store's insert names the new column: rows of the old schema are written as the old store wrote them
    await driver.query('INSERT INTO predictions SELECT * FROM json_populate_recordset(NULL::predictions, $1::json)', [JSON.stringify(mixed.before.map(predictionRow))])
    const [{ file: fileBefore }] = await driver.query<{ file: number }>("SELECT pg_relation_filenode('predictions') AS file")
    await driver.close()

    const { store, applied } = await RecordStore.open(options)
    t.same(applied, migrations.filter(({ version }) => version >= 6).map(({ version }) => version), 'the store adds the column (and what came after it)')
    const fresh = study('2.25.1002')
    await Promise.all([...mixed.after, ...fresh.before, ...fresh.after].map(async (r) => await store.savePrediction(r)))

    const read = await store.readStudy('2.25.1001')
    const expected = await store.readStudy('2.25.1002')
    t.same(content(read.instances), content(expected.instances), 'the same rows, frames and order as a study written after the migration')
    // newest first: the single image and every newer object (12,001 slices), the older single image, then as many older objects as fit
    const olderKept = Math.floor((MAX_STUDY_ROWS - 2 - OBJECTS * FRAMES) / FRAMES)
    t.same(read.instances.map(({ id }) => id), [...mixed.before.slice(OBJECTS - olderKept), ...mixed.after].map(({ id }) => id), 'bounded at MAX_STUDY_ROWS slices, old rows counted from their answers')
    t.same(read.instances.map(({ frames }) => frames?.length ?? null), [...Array(olderKept).fill(FRAMES), null, null, ...Array(OBJECTS).fill(FRAMES)], 'a single image has no frames, old or new')

    await store.close() // PGlite has one opener at a time
    const check = await openDriver(options)
    t.teardown(async () => await check.close())
    const [{ file: fileAfter }] = await check.query<{ file: number }>("SELECT pg_relation_filenode('predictions') AS file")
    t.equal(fileAfter, fileBefore, 'the column was added without rewriting the table')
    const slices = await check.query<{ slices: number | null, n: number }>(
      "SELECT slices, count(*)::integer AS n FROM predictions WHERE study_instance_uid = '2.25.1001' GROUP BY slices ORDER BY slices")
    t.same(slices, [{ slices: 1, n: 1 }, { slices: FRAMES, n: OBJECTS }, { slices: null, n: OBJECTS + 1 }], 'old rows keep NULL; new ones hold their slices')
  })
}
