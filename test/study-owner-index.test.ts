import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { migrate, readMigrations } from '../records/migrate.js'
import { openPGlite } from '../records/pglite-driver.js'
import { studyOwnerSql } from '../records/study-owner.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// A study's owner (records/study-owner.ts) is looked up by readStudy for every records:read-all reader and, per study
// received lately, by every FHIR push sweep. Without an index in arrival order within a study, the lookup reads every
// row of the study and sorts them, so a study flooded under its UID costs every sweep that much. The plan is asserted,
// not a duration: with sequential scans off, the lookup must be an index scan that stops at the first row, no sort;
// with STUDY_OWNERS, at the first row of a listed caller (a filter on the same walk). The plan is the generic one the
// store's named statements come to, its parameters unknown.

t.test('the study owner lookup reads the study\'s rows in arrival order from an index and stops at the first, without a sort', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'kidney-owner-index-'))
  t.teardown(async () => await rm(work, { recursive: true, force: true }))
  const driver = await openPGlite(await emptyPGliteDataDir(work))
  t.teardown(async () => await driver.close())
  await migrate(driver, await readMigrations())
  await driver.exec('SET enable_seqscan = off; SET enable_bitmapscan = off; SET plan_cache_mode = force_generic_plan')
  await driver.exec(`PREPARE owner (text, text[]) AS SELECT ${studyOwnerSql('$1', '$2::text[]')} AS caller`)
  for (const [owners, what] of [['NULL', 'any caller'], [`'{"dicom:PACS1","api-key:pacs"}'`, 'STUDY_OWNERS']]) {
    const [{ 'QUERY PLAN': plan }] = await driver.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (FORMAT JSON) EXECUTE owner ('2.25.1', ${owners})`)
    const nodes: Array<{ type: string, index?: string }> = []
    const walk = (node: { 'Node Type': string, 'Index Name'?: string, Plans?: unknown[] }): void => {
      nodes.push({ type: node['Node Type'], ...(node['Index Name'] === undefined ? {} : { index: node['Index Name'] }) })
      for (const child of node.Plans ?? []) walk(child as typeof node)
    }
    walk((typeof plan === 'string' ? JSON.parse(plan) : plan)[0].Plan)
    t.notOk(nodes.some(({ type }) => type === 'Sort'), `${what}: no sort of the study's rows: ${JSON.stringify(nodes)}`)
    t.ok(nodes.some(({ type, index }) => type === 'Index Scan' && index === 'predictions_study_arrival'), `${what}: an index scan in arrival order`)
  }
  const indexes = await driver.query<{ indexname: string }>("SELECT indexname FROM pg_indexes WHERE tablename = 'predictions' ORDER BY indexname")
  t.same(indexes.map(({ indexname }) => indexname), ['predictions_caller_newest', 'predictions_newest', 'predictions_pkey', 'predictions_study_arrival'],
    'in place of the series index, which no query used: an insert maintains as many indexes as before')
})
