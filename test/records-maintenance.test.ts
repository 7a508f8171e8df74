import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openPGlite } from '../records/pglite-driver.js'
import { pageSql } from '../records/page.js'
import { RecordStore } from '../records/store.js'
import type { SqlDriver } from '../records/sql-driver.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { plan, scans } from './helpers/query-plan.js'

// PGlite is one standalone backend: no autovacuum launcher, so nothing analyzes its tables or makes what retention
// deletes reusable unless the store does (RecordStore.maintain, records/maintenance.ts). On a real embedded database
// grown to a caller's 20,000 rows: the state it is left in without maintenance (no statistics, a caller's page sorted
// from all its rows, a retention cycle growing the files), then after maintenance. The listing's plan is the one it
// gets with its values (EXPLAIN ANALYZE: rows, no durations), the planner free to choose.

const work = await mkdtemp(join(tmpdir(), 'kidney-maintenance-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const CALLER = 'api-key:workstation'
const OTHER = 'dicom:PACS1'
const ROWS = 20_000
const CYCLE = 5_000
const TABLES = ['predictions', 'audit_events', 'failed_instances', 'study_pushes']
const start = Date.now() - 86_400_000
let sent = 0
/** Rows retention has deleted so far: the oldest. */
let expired = 0

/** `count` predictions of `caller`, each a millisecond after the one before. */
async function save (store: RecordStore, caller: string, count: number): Promise<void> {
  await Promise.all(Array.from({ length: count }, async () => {
    const id = randomUUID()
    await store.savePrediction({
      id, caller, route: '/predict', createdAt: new Date(start + sent++),
      input: { sha256: '0'.repeat(64), bytes: 1, format: 'png' },
      model: { name: 'kidney-stone-cnn', version: 'test', sha256: '0'.repeat(64), threshold: 0.5, temperature: 1 },
      prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, answer: { id }
    })
  }))
}

/** What the database says of its tables and the caller's first page, read with the store closed (one process at a time). */
async function inspect (dataDir: string): Promise<{ heapBytes: number, tables: Array<Record<string, unknown>>, sorted: boolean, scans: Array<Record<string, unknown>> }> {
  const db: SqlDriver = await openPGlite(dataDir)
  try {
    return await db.withSession(async (session) => {
      const [{ bytes }] = await session.query<{ bytes: string }>("SELECT pg_relation_size('predictions')::text AS bytes")
      // reltuples, kept in pg_class; pg_stat_user_tables' last_vacuum and last_analyze do not outlive a PGlite close
      const tables = await session.query(
        'SELECT relname AS table, reltuples >= 0 AS counted, (SELECT count(*)::integer FROM pg_stats WHERE tablename = relname) AS columns ' +
        'FROM pg_class WHERE relname = ANY($1::text[]) ORDER BY relname', [`{${TABLES.join(',')}}`])
      // a listing is sent unnamed (RecordStore.listPredictions): planned each time with its values, as here
      await session.exec('SET plan_cache_mode = force_custom_plan')
      const nodes = await plan(session, pageSql('predictions', 'id, answer, caller', 'uuid', { caller: CALLER, limit: 50 }).sql, 'text, integer', `'${CALLER}', 51`)
      return { heapBytes: Number(bytes), tables, sorted: nodes.some((node) => /Sort/.test(node['Node Type'])), scans: scans(nodes, 'predictions') }
    })
  } finally {
    await db.close()
  }
}

/**
 * Retention's cut of the oldest CYCLE rows (RecordStore.deleteExpired, as the sweep runs it), then as many new rows;
 * the maintenance between them or not. How many retention deleted.
 */
async function cycle (store: RecordStore, maintained: boolean): Promise<number> {
  expired += CYCLE
  const { predictions } = await store.deleteExpired(new Date(start + expired), CYCLE)
  if (maintained) await store.maintain()
  await save(store, CALLER, CYCLE)
  return predictions
}

t.test('pglite: after maintenance the tables have statistics, the caller\'s page is read off its index, and what retention deleted is reused', async (t) => {
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-')))
  const open = async (): Promise<RecordStore> => (await RecordStore.open({ engine: 'pglite', dataDir })).store
  let store = await open()
  await save(store, CALLER, ROWS)
  await save(store, OTHER, 1_000)
  await store.close()

  // Without maintenance: what every PGlite database of the service was left in before it.
  const grown = await inspect(dataDir)
  t.same(grown.tables.map((table) => [table.counted, table.columns]), TABLES.map(() => [false, 0]), 'no maintenance: no table has statistics (reltuples -1, no column statistics)')
  t.ok(grown.sorted, 'no maintenance: the caller\'s page is sorted from its rows')
  store = await open()
  t.equal(await cycle(store, false), CYCLE, 'retention deleted the oldest rows')
  await store.close()
  const cycled = await inspect(dataDir)
  t.ok(cycled.heapBytes > grown.heapBytes, `no maintenance: a retention cycle grows the table (${grown.heapBytes} -> ${cycled.heapBytes} bytes)`)

  // On the old code there was no maintenance to run: the state above was the service's for good.
  store = await open()
  t.equal(await cycle(store, true), CYCLE, 'retention deleted the oldest rows')
  await store.maintain()
  await store.close()
  const maintained = await inspect(dataDir)
  t.same(maintained.tables.map((table) => table.counted), TABLES.map(() => true), 'every records table has its rows counted (reltuples >= 0)')
  t.ok((maintained.tables.find((table) => table.table === 'predictions')?.columns as number) > 0, 'predictions has column statistics')
  t.equal(maintained.heapBytes, cycled.heapBytes, 'a retention cycle with maintenance: the new rows take the deleted rows\' space, the table does not grow')
  t.notOk(maintained.sorted, 'the caller\'s page: no sort')
  t.match(maintained.scans, [{ type: 'Index Scan', index: 'predictions_caller_newest', removed: 0, rows: 51 }], 'the page and one row more, off predictions_caller_newest')
})
