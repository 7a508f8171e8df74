// What the embedded database's maintenance (records/maintenance.ts) costs: `tsx bench/vacuum.ts [rows ...]`. For each
// row count, a new PGlite database is filled with that many predictions of one caller (1,000 per transaction), goes
// through two retention cycles without maintenance (the oldest tenth deleted, as many rows inserted), then the
// maintenance (VACUUM_STATEMENT, CHECKPOINT_STATEMENT) runs on it for the first time, again at once, and in six more cycles between the
// delete and the insert. While it runs a `SELECT 1` is sent every 50 ms: how long one waited is what a request's
// statement waits behind the maintenance. Sizes after each cycle; transaction ids before and after. To bench/results/.
// `--aged`: the first run freezes every row, as on a database past 150 million transactions.
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openPGlite } from '../records/pglite-driver.js'
import { CHECKPOINT_STATEMENT, VACUUM_STATEMENT } from '../records/maintenance.js'
import { RecordStore } from '../records/store.js'
import type { SqlDriver } from '../records/sql-driver.js'

const CALLER = 'api-key:bench'
const BATCH = 1_000
const counts = process.argv.slice(2).map(Number).filter((n) => n > 0)
// --aged: the first maintenance as on a database older than vacuum_freeze_table_age (150 million transactions), whose
// VACUUM is aggressive and freezes every row older than vacuum_freeze_min_age (50 million): here every row.
const aged = process.argv.includes('--aged')

/** Rows as the service writes them for a slice classified from an upload, the answer a few hundred bytes of JSON. */
const insert = async (db: SqlDriver, from: number, rows: number): Promise<void> => {
  for (let at = from; at < from + rows; at += BATCH) {
    await db.query(`INSERT INTO predictions (id, created_at, caller, route, input_sha256, input_bytes, input_format, model_name, model_version,
      model_sha256, threshold, temperature, prediction, probability_normal, probability_stone, confidence_band, timings, answer)
      SELECT gen_random_uuid(), now() - interval '1 day' + n * interval '1 ms', $1, '/predict', repeat('a', 64), 300000, 'png', 'kidney-stone-cnn', '2.5.0',
      repeat('b', 64), 0.5, 1, 'Normal', 0.9, 0.1, 'high', '{"decodeMs":1.2,"inferMs":20.1}',
      json_build_object('id', gen_random_uuid(), 'prediction', 'Normal', 'probabilities', json_build_object('Normal', 0.9, 'Stone', 0.1), 'model', repeat('c', 200))
      FROM generate_series($2::integer, $3::integer) AS n`, [CALLER, at, Math.min(at + BATCH, from + rows) - 1])
  }
}

/** The records tables' bytes, their indexes included, pg_wal's, and the whole data directory's. */
const sizes = async (db: SqlDriver, dir: string): Promise<{ tables: number, wal: number, directory: number }> => ({
  wal: Number(execFileSync('du', ['-sk', join(dir, 'records/pg_wal')], { encoding: 'utf8' }).split('\t')[0]) * 1024,
  tables: Number((await db.query<{ b: string }>("SELECT sum(pg_total_relation_size(t))::text AS b FROM unnest('{predictions,audit_events,failed_instances,study_pushes}'::regclass[]) AS t"))[0].b),
  directory: Number(execFileSync('du', ['-sk', dir], { encoding: 'utf8' }).split('\t')[0]) * 1024
})

/** Runs the maintenance while a ping is sent every 50 ms; its duration and the longest and median ping waits. */
const timed = async (db: SqlDriver): Promise<{ ms: number, statements: Record<string, number>, pingMaxMs: number, pingMedianMs: number, pings: number }> => {
  const waits: number[] = []
  let done = false
  const pinging = (async () => {
    while (!done) {
      const sent = performance.now()
      await db.query('SELECT 1')
      waits.push(performance.now() - sent)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()
  const started = performance.now()
  const statements: Record<string, number> = {}
  for (const statement of [VACUUM_STATEMENT, CHECKPOINT_STATEMENT]) {
    const from = performance.now()
    await db.exec(statement)
    statements[statement] = Math.round(performance.now() - from)
  }
  const ms = performance.now() - started
  done = true
  await pinging
  waits.sort((a, b) => a - b)
  return { ms: Math.round(ms), statements, pingMaxMs: Math.round(waits.at(-1) ?? 0), pingMedianMs: Math.round(waits[Math.floor(waits.length / 2)] ?? 0), pings: waits.length }
}

const stats = async (db: SqlDriver): Promise<Record<string, unknown>> => (await db.query(
  "SELECT c.reltuples::bigint AS reltuples, s.n_live_tup, s.n_dead_tup, s.last_vacuum IS NOT NULL AS vacuumed, s.last_analyze IS NOT NULL AS analyzed FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'predictions'"))[0]

const xids = async (db: SqlDriver): Promise<Record<string, unknown>> => ({
  current: (await db.query<{ x: string }>('SELECT txid_current()::text AS x'))[0].x,
  databases: await db.query("SELECT datname, datfrozenxid::text AS datfrozenxid, age(datfrozenxid) AS age FROM pg_database ORDER BY datname"),
  predictions: (await db.query("SELECT relfrozenxid::text AS relfrozenxid, age(relfrozenxid) AS age FROM pg_class WHERE relname = 'predictions'"))[0]
})

const results: Array<Record<string, unknown>> = []
for (const rows of counts) {
  const work = await mkdtemp(join(tmpdir(), 'kidney-vacuum-bench-'))
  try {
    await (await RecordStore.open({ engine: 'pglite', dataDir: work })).store.close()
    const db = await openPGlite(work)
    const filling = performance.now()
    await insert(db, 0, rows)
    const fillMs = Math.round(performance.now() - filling)
    const result: Record<string, unknown> = { rows, fillMs, grown: await stats(db), xidsBefore: await xids(db), sizes: [{ cycle: 0, maintained: false, ...await sizes(db, work) }] }
    // retention's cut of the oldest tenth and as many new rows, with the maintenance between them or without
    const cycles = result.sizes as Array<Record<string, unknown>>
    const cycle = async (maintained: boolean): Promise<void> => {
      await db.query(`DELETE FROM predictions WHERE id IN (SELECT id FROM predictions ORDER BY created_at LIMIT ${rows / 10})`)
      const maintenance = maintained ? await timed(db) : undefined
      await insert(db, filled, rows / 10)
      filled += rows / 10
      cycles.push({ cycle: cycles.length, maintained, maintenance, ...await sizes(db, work) })
    }
    let filled = rows
    for (let n = 0; n < 2; n++) await cycle(false)
    if (aged) await db.exec('SET vacuum_freeze_table_age = 0; SET vacuum_freeze_min_age = 0')
    result.first = await timed(db)
    if (aged) await db.exec('RESET vacuum_freeze_table_age; RESET vacuum_freeze_min_age')
    result.afterFirst = await stats(db)
    result.again = await timed(db)
    for (let n = 0; n < 6; n++) await cycle(true)
    result.xidsAfter = await xids(db)
    await db.close()
    results.push(result)
    console.log(JSON.stringify(result))
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}
const file = join('bench/results', `vacuum-${new Date().toISOString().slice(0, 16).replace(':', '')}Z${aged ? '-aged' : ''}.json`)
await writeFile(file, JSON.stringify({ command: `tsx bench/vacuum.ts ${counts.join(' ')}${aged ? ' --aged' : ''}`, node: process.version, results }, null, 2))
console.log(file)
