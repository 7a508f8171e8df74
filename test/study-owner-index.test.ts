import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openPGlite } from '../records/pglite-driver.js'
import { openPostgres } from '../records/postgres-driver.js'
import { pageSql, type PageQuery } from '../records/page.js'
import { DELETE_PREDICTION_SQL, RecordStore, type StoreOptions } from '../records/store.js'
import { MAX_STUDY_ROWS, STUDY_FAILURES_SQL, STUDY_INSTANCES_SQL } from '../records/study-rows.js'
import { studyOwnerSql } from '../records/study-owner.js'
import type { SqlDriver } from '../records/sql-driver.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { startPostgres } from './helpers/postgres.js'
import { plan, scans as scansOf, type PlanNode } from './helpers/query-plan.js'

// A study's owner (records/study-owner.ts) is looked up by readStudy for every records:read-all reader and, per study
// received lately, by every FHIR push sweep; readStudy then reads the owner's newest rows. A workstation (not in
// STUDY_OWNERS) sends many rows under the study's UID before the PACS's series and more after it: the lookup must not
// walk the rows ahead of the PACS's first, nor the read those around the PACS's rows. Asserted on the plans the
// store's named statements come to (the generic ones, parameters unknown), run on the data (EXPLAIN ANALYZE: rows, no
// durations): an index seek with the caller in its condition, no row read and thrown away by a filter. Without
// STUDY_OWNERS, the lookup stops at the study's first row in arrival order. The callers' first rows retention kept
// (study_owners, migration 0010: here after the workstation's first rows expired) are a seek per listed caller, or the
// study's first entry, and what the lookup sorts is these first rows alone. The same for the study's refusals, which the workstation's refused instances surround, and
// for GET /predictions' pages.

const work = await mkdtemp(join(tmpdir(), 'kidney-owner-index-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const server = await startPostgres()
t.teardown(async () => await server.destroy())

const PACS = 'dicom:PACS1'
const OTHER_PACS = 'dicom:PACS2'
const WORKSTATION = 'api-key:workstation'
const FLOOD = 1_000
const STUDY = '1.2.826.0.1.3680043.8.498.20'

/** What a plan read of predictions. */
const scans = (nodes: PlanNode[]): Array<Record<string, unknown>> => scansOf(nodes, 'predictions')
/** The most rows any one sort of a plan was given. */
const sorted = (nodes: PlanNode[]): number => Math.max(0, ...nodes.filter((node) => /Sort/.test(node['Node Type']))
  .map((node) => (node.Plans ?? []).reduce((sum, child) => sum + child['Actual Rows'] * child['Actual Loops'], 0)))

const engines: Array<{ engine: 'pglite' | 'postgres', options: () => Promise<StoreOptions>, driver: (options: StoreOptions) => Promise<SqlDriver> }> = [
  {
    engine: 'pglite',
    options: async () => ({ engine: 'pglite', dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-'))), studyOwners: [OTHER_PACS, PACS] }),
    driver: async (options) => await openPGlite((options as { dataDir: string }).dataDir)
  },
  {
    engine: 'postgres',
    options: async () => ({ engine: 'postgres', url: await server.createDatabase(`owner_index_${Date.now()}`), poolSize: 2, timeoutMs: 10_000, migrationTimeoutMs: 60_000, studyOwners: [OTHER_PACS, PACS] }),
    driver: async (options) => await openPostgres({ ...(options as { url: string, timeoutMs: number }), poolSize: 1 })
  }
]

for (const { engine, options, driver } of engines) {
  t.test(`${engine}: the owner is found, and its rows read, by a seek per caller, past none of the ${2 * FLOOD} rows an unlisted caller sent around them`, async (t) => {
    const opened = await options()
    const { store } = await RecordStore.open(opened)
    const start = Date.now() - 3_600_000
    let sent = 0
    const classified = async (caller: string, count: number): Promise<void> => {
      await Promise.all(Array.from({ length: count }, async () => {
        const id = randomUUID()
        const n = sent++
        await store.savePrediction({
          id, caller, route: '/predict', createdAt: new Date(start + n),
          input: { sha256: '0'.repeat(64), bytes: 1, format: 'dicom' },
          dicom: { studyInstanceUid: STUDY, seriesInstanceUid: `${STUDY}.${caller.length}`, sopInstanceUid: `${STUDY}.${caller.length}.${n}` },
          model: { name: 'kidney-stone-cnn', version: 'test', sha256: '0'.repeat(64), threshold: 0.5, temperature: 1 },
          prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, answer: { id }
        })
      }))
    }
    const refused = async (caller: string, count: number): Promise<void> => {
      await Promise.all(Array.from({ length: count }, async () => {
        const n = sent++
        await store.saveFailedInstance({ caller, route: 'DIMSE C-STORE', createdAt: new Date(start + n), studyInstanceUid: STUDY, sopInstanceUid: `${STUDY}.${caller.length}.${n}`, status: 422, code: 'CORRUPT_DICOM' })
      }))
    }
    // The workstation first, the PACS's three slices, the other listed PACS (listed first, sending later), the workstation
    // again; the workstation's instances refused around the PACS's two refusals.
    await classified(WORKSTATION, FLOOD)
    await refused(WORKSTATION, FLOOD)
    await classified(PACS, 3)
    await refused(PACS, 2)
    await classified(OTHER_PACS, 1)
    await classified(WORKSTATION, FLOOD)
    await refused(WORKSTATION, FLOOD)
    t.same((await store.readStudy(STUDY)).instances.map((row) => row.series_instance_uid), Array(3).fill(`${STUDY}.${PACS.length}`), 'read-all: the PACS\'s rows, the first listed caller to send')
    t.equal((await store.readStudy(STUDY, WORKSTATION)).instances.length, 2 * FLOOD, 'the workstation\'s own view: its rows')
    t.same((await store.readStudy(STUDY)).failures.map((row) => row.sop_instance_uid?.startsWith(`${STUDY}.${PACS.length}.`)), [true, true], 'read-all: the PACS\'s refusals')
    // Retention takes the workstation's first 10 rows: the sweep keeps the study's owner (study_owners, migration 0010).
    t.same(await store.deleteExpired(new Date(start + 10), 500), { predictions: 10, auditEvents: 0, failedInstances: 0 }, 'the workstation\'s first rows expire')
    await store.close()

    const db = await driver(opened)
    t.teardown(async () => await db.close())
    await db.withSession(async (session) => {
      await session.exec('SET enable_seqscan = off; SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan')
      const owner = `SELECT ${studyOwnerSql('$1', '$2::text[]')} AS caller`
      const listed = `'{"${OTHER_PACS}","${PACS}"}'`
      t.same(await session.query(owner.replaceAll('$1', `'${STUDY}'`).replaceAll('$2', listed)), [{ caller: PACS }], 'STUDY_OWNERS: the PACS owns it')
      t.same(await session.query(owner.replaceAll('$1', `'${STUDY}'`).replaceAll('$2', 'NULL')), [{ caller: WORKSTATION }], 'any caller: the first to send owns it')

      // On the old code one scan of predictions_study_arrival, caller a filter: 1,000 rows removed, one returned.
      const withOwners = scans(await plan(session, owner, 'text, text[]', `'${STUDY}', ${listed}`))
      t.ok(withOwners.length > 0, 'predictions are read')
      for (const scan of withOwners) {
        t.match(scan, { type: /^Index (Only )?Scan$/, index: 'predictions_study_caller', cond: /caller/, filter: undefined, removed: 0 }, `STUDY_OWNERS: a seek per listed caller: ${JSON.stringify(scan)}`)
        t.ok((scan.rows as number) <= 2, `no more than a row per listed caller: ${JSON.stringify(scan)}`)
      }
      t.ok(sorted(await plan(session, owner, 'text, text[]', `'${STUDY}', ${listed}`)) <= 4, 'STUDY_OWNERS: no sort of the study\'s rows, of two rows per listed caller at most')
      // The first rows retention kept (the workstation's): STUDY_OWNERS, a seek of study_owners' key per listed caller
      // (none of theirs is kept); any caller, the first entry of the study in study_owners_first.
      const keptListed = scansOf(await plan(session, owner, 'text, text[]', `'${STUDY}', ${listed}`), 'study_owners')
      t.match(keptListed, [{ type: 'Index Scan', index: 'study_owners_pkey', cond: /caller/, removed: 0, rows: 0 }], 'STUDY_OWNERS: the kept first rows, a seek of the key per listed caller')
      t.match(scansOf(await plan(session, owner, 'text, text[]', `'${STUDY}', NULL`), 'study_owners'),
        [{ type: 'Index Scan', index: 'study_owners_first', cond: /study_instance_uid/, removed: 0, rows: 1 }], 'any caller: the oldest kept first row, the first entry of the study')
      // A withdrawal forgets the kept owner with the study's last row: a seek of its key, and the study's first row left.
      const [{ id: first }] = await session.query<{ id: string }>('SELECT id FROM predictions WHERE study_instance_uid = $1 ORDER BY created_at, id LIMIT 1', [STUDY])
      await session.exec('BEGIN')
      const withdrawal = await plan(session, DELETE_PREDICTION_SQL, 'uuid', `'${first}'`)
      await session.exec('ROLLBACK')
      t.match(scansOf(withdrawal, 'study_owners').filter((scan) => /Scan/.test(scan.type as string)), [{ type: 'Index Scan', index: /^study_owners_/, cond: /study_instance_uid/, removed: 0, rows: 1 }],
        'a withdrawal: its study\'s kept first rows, a seek of the study')
      t.match(scans(withdrawal).filter((scan) => /Scan/.test(scan.type as string) && scan.index !== 'predictions_pkey'), [{ type: 'Index Scan', index: /^predictions_study_/, cond: /study_instance_uid/, removed: 1, rows: 1 }],
        'a withdrawal: whether its study keeps a row, a seek stopping at the first past the withdrawn one')
      const anyCaller = await plan(session, owner, 'text, text[]', `'${STUDY}', NULL`)
      t.ok(sorted(anyCaller) <= 2, 'any caller: no sort of the study\'s rows, of the first kept and the first recorded alone')
      t.equal(scans(anyCaller).length, 1, 'any caller: one scan')
      t.match(scans(anyCaller), [{ type: 'Index Scan', index: 'predictions_study_arrival', removed: 0, rows: 1 }], 'any caller: the first row of the arrival walk')

      // On the old code a backward walk of predictions_study_arrival filtered on the caller: 2,001 rows removed.
      const readPlan = await plan(session, STUDY_INSTANCES_SQL, 'text, text, integer', `'${STUDY}', '${PACS}', ${MAX_STUDY_ROWS}`)
      const read = scans(readPlan)
      // and, on the old code, the rows kept sorted again by their CREATED_AT_US text (a bare created_at in ORDER BY)
      t.notOk(readPlan.some((node) => /Sort/.test(node['Node Type'])), 'the owner\'s rows: no sort, in the index\'s order')
      t.equal(read.length, 1, 'the owner\'s rows: one scan')
      t.match(read, [{ type: 'Index Scan Backward', index: 'predictions_study_caller', cond: /caller/, filter: undefined, removed: 0, rows: 3 }], 'the owner\'s rows: a backward seek')

      // A study's refusals (migration 0009). On the old code one statement, `$3 IS NULL OR caller = ANY($3)`, whose
      // generic plan walked failed_instances_created backward filtering on study and caller: 2,000 rows removed.
      const failures = async (whose: keyof typeof STUDY_FAILURES_SQL, callers?: { type: string, value: string }): Promise<{ sorted: boolean, scans: Array<Record<string, unknown>> }> => {
        const nodes = await plan(session, STUDY_FAILURES_SQL[whose], ['text', 'integer', callers?.type].filter(Boolean).join(', '), [`'${STUDY}'`, MAX_STUDY_ROWS, callers?.value].filter(Boolean).join(', '))
        return { sorted: nodes.some((node) => /Sort/.test(node['Node Type'])), scans: scansOf(nodes, 'failed_instances') }
      }
      t.match(await failures('caller', { type: 'text', value: `'${PACS}'` }), { sorted: false, scans: [{ type: 'Index Scan Backward', index: 'failed_instances_study_caller', cond: /caller/, filter: undefined, removed: 0, rows: 2 }] },
        'the owner\'s refusals: a backward seek, none of the workstation\'s read')
      const listedScans = (await failures('listed', { type: 'text[]', value: listed })).scans
      t.ok(listedScans.length > 0, 'STUDY_OWNERS while none owns it: refusals are read')
      for (const scan of listedScans) {
        t.match(scan, { type: 'Index Scan Backward', index: 'failed_instances_study_caller', cond: /caller/, filter: undefined, removed: 0 }, `STUDY_OWNERS while none owns it: a seek per listed caller: ${JSON.stringify(scan)}`)
      }
      t.equal(listedScans.reduce((sum, scan) => sum + (scan.rows as number), 0), 2, 'the listed callers\' refusals alone')
      t.match(await failures('any'), { scans: [{ index: 'failed_instances_study_caller', removed: 0, rows: 2 * FLOOD + 2 }] }, 'every caller\'s: the study\'s refusals, by its index')

      // GET /predictions: on the old code its order was a bare created_at, the selected CREATED_AT_US text (page.ts):
      // a Sort of every row the filter kept, the workstation's 2,000 read for a page of 50, however it was indexed.
      const listing = async (query: PageQuery, types: string, args: string): Promise<{ sorted: boolean, scans: Array<Record<string, unknown>> }> => {
        const nodes = await plan(session, pageSql('predictions', 'id, answer, caller', 'uuid', query).sql, types, args)
        return { sorted: nodes.some((node) => /Sort/.test(node['Node Type'])), scans: scans(nodes) }
      }
      t.match(await listing({ caller: PACS, equal: { study_instance_uid: STUDY }, limit: 2 }, 'text, text, integer', `'${PACS}', '${STUDY}', 3`),
        { sorted: false, scans: [{ type: 'Index Scan Backward', index: 'predictions_study_caller', cond: /caller/, removed: 0, rows: 3 }] }, '?studyInstanceUid= of one caller: a backward seek on predictions_study_caller')
      t.match(await listing({ caller: WORKSTATION, limit: 50 }, 'text, integer', `'${WORKSTATION}', 51`),
        { sorted: false, scans: [{ type: 'Index Scan', index: 'predictions_caller_newest', removed: 0, rows: 51 }] }, 'one caller\'s: the page and one row more, off predictions_caller_newest')
      t.match(await listing({ limit: 50 }, 'integer', '51'),
        { sorted: false, scans: [{ type: 'Index Scan', index: 'predictions_newest', removed: 0, rows: 51 }] }, 'everyone\'s: the page and one row more, off predictions_newest')
    })
  })
}
