import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { SqlDriver } from '../records/sql-driver.js'
import { RecordStore, type StoreOptions } from '../records/store.js'
import { storeEngines } from './helpers/store-engines.js'

// A study's owner (records/study-owner.ts) while retention deletes its rows oldest first (store.ts deleteExpired). On
// the old code the owner was the caller of the oldest prediction still recorded: once the PACS's first two slices
// expired, mallory's instance sent under the study's UID between them was the oldest, so records:read-all readers saw
// mallory's rows in place of the PACS's three slices still there, and the FHIR push queued mallory's report as a new
// version of the study. Now the sweep keeps each caller's first row of a study before deleting it (study_owners,
// migration 0010), so that under any STUDY_OWNERS the owner is the one it would be had retention deleted nothing. And
// what was kept goes in the statement that deletes its study's last row: forgotten by a later one, it owned the study sent
// again in between (during the sweep's next statements, after a pass that failed, after a withdrawal) as long as the
// new rows lived, and read-all readers saw none of them.

const work = await mkdtemp(join(tmpdir(), 'kidney-owner-retention-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const STUDY = '1.2.826.0.1.3680043.8.498.77'
const start = Date.now() - 3 * 24 * 3_600_000
const at = (seconds: number): Date => new Date(start + seconds * 1000)

/** One classified instance of STUDY from `caller`, `seconds` after the start, in series `series`; its id. */
async function sent (store: RecordStore, caller: string, seconds: number, series: string): Promise<string> {
  const id = randomUUID()
  await store.savePrediction({
    id, caller, route: '/predict', createdAt: at(seconds),
    input: { sha256: '0'.repeat(64), bytes: 1, format: 'dicom' },
    dicom: { studyInstanceUid: STUDY, seriesInstanceUid: `${STUDY}.${series}`, sopInstanceUid: `${STUDY}.${series}.${seconds}` },
    model: { name: 'kidney-stone-cnn', version: 'test', sha256: '0'.repeat(64), threshold: 0.5, temperature: 1 },
    prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, answer: { id }
  })
  return id
}

/**
 * Has `between` run once just before the store's statement named `name`, or, with `fail`, in its place, the statement
 * then failing as on a lost connection: what a replica's or a caller's statement does between two of the sweep's. The
 * database runs everything; only the order is chosen.
 */
function between (store: RecordStore, name: string, work: () => Promise<void>, fail = false): void {
  const driver = (store as unknown as { driver: SqlDriver }).driver
  const query = driver.query
  driver.query = async <R>(text: string, params?: unknown[], label?: string): Promise<R[]> => {
    if (label !== name) return await query<R>(text, params, label)
    driver.query = query
    await work()
    if (fail) throw new Error('connection lost')
    return await query<R>(text, params, label)
  }
}

/** The read-all view's instances (or `caller`'s own), as `<series>.<seconds>`. */
async function seen (store: RecordStore, caller?: string): Promise<string[]> {
  return (await store.readStudy(STUDY, caller)).instances.map((row) => (row.sop_instance_uid ?? '').slice(STUDY.length + 1))
}

for (const [engine, options] of storeEngines(join(work, 'data'), 'owner_retention')) {
  t.test(`${engine}: a study stays its first caller's while retention deletes its oldest rows, and is forgotten with its last`, async (t) => {
    const { store } = await RecordStore.open(await options(t))
    t.teardown(async () => await store.close())
    for (const seconds of [0, 10, 20, 30, 40]) await sent(store, 'api-key:pacs', seconds, '1')
    await sent(store, 'api-key:mallory', 15, '9')
    await sent(store, 'api-key:mallory', 600, '9')
    t.same(await seen(store), ['1.0', '1.10', '1.20', '1.30', '1.40'], 'the PACS\'s series, not mallory\'s')
    t.equal(await store.pushes.enqueueFinal(30, at(100)), 1, 'final 30 s after the PACS\'s last slice')

    t.same(await store.deleteExpired(at(12), 500), { predictions: 2, auditEvents: 0, failedInstances: 0 }, 'retention takes the PACS\'s slices at 0 and 10 s')
    // old code: ['9.15', '9.600'], and 1 version queued
    t.same(await seen(store), ['1.20', '1.30', '1.40'], 'still the PACS\'s study: its three slices left, mallory\'s none')
    t.equal(await store.pushes.enqueueFinal(30, at(700)), 0, 'no new version: mallory\'s report is not pushed')

    t.same(await store.deleteExpired(at(50), 500), { predictions: 4, auditEvents: 0, failedInstances: 0 }, 'the PACS\'s last slices go, and mallory\'s first')
    // old code: ['9.600'], and mallory's report queued
    t.same(await seen(store), [], 'the PACS\'s rows gone: mallory\'s are no one\'s for read-all readers')
    t.equal(await store.pushes.enqueueFinal(30, at(1000)), 0, 'nor pushed')
    t.same(await seen(store, 'api-key:mallory'), ['9.600'], 'mallory still reads her own')

    t.same(await store.deleteExpired(at(601), 500), { predictions: 1, auditEvents: 0, failedInstances: 0 }, 'the study\'s last row goes')
    await sent(store, 'api-key:other', 900, '2')
    t.same(await seen(store), ['2.900'], 'once nothing of the study is left, its kept owner is forgotten: the next sender owns it')
  })

  t.test(`${engine}: a study sent again once retention or a withdrawal took its last row is the new sender's at once`, async (t) => {
    const { store } = await RecordStore.open(await options(t))
    t.teardown(async () => await store.close())
    // Each round: the PACS's slices at `first` and `first` + 10 s; a sweep takes the first and keeps the PACS as owner.
    const kept = async (first: number): Promise<string> => {
      await sent(store, 'api-key:pacs', first, '1')
      const last = await sent(store, 'api-key:pacs', first + 10, '1')
      t.same(await store.deleteExpired(at(first + 5), 500), { predictions: 1, auditEvents: 0, failedInstances: 0 }, 'the PACS\'s first slice goes, its owner kept')
      return last
    }

    // The next pass takes the last slice; the study is sent again before the pass's next statement.
    await kept(0)
    between(store, 'records.sweep.study_owners', async () => { await sent(store, 'api-key:other', 900, '2') })
    t.same(await store.deleteExpired(at(15), 500), { predictions: 1, auditEvents: 0, failedInstances: 0 })
    // old code: [] (the PACS's kept owner stays as long as the new row), and nothing queued
    t.same(await seen(store), ['2.900'], 'sent again during the pass that took its last row: the new sender\'s')
    t.equal(await store.pushes.enqueueFinal(30, at(1000)), 1, 'and pushed')
    t.same(await store.deleteExpired(at(901), 500), { predictions: 1, auditEvents: 0, failedInstances: 0 })

    // The pass fails after its predictions statement (a lost connection); the study is sent again before the next.
    await kept(1000)
    between(store, 'records.sweep.study_owners', async () => {}, true)
    await t.rejects(store.deleteExpired(at(1015), 500), /connection lost/)
    await sent(store, 'api-key:other', 1900, '2')
    t.same(await store.deleteExpired(at(1015), 500), { predictions: 0, auditEvents: 0, failedInstances: 0 })
    // old code: [] after this and every later pass
    t.same(await seen(store), ['2.1900'], 'sent again after a failed pass took its last row: the new sender\'s')
    t.same(await store.deleteExpired(at(1901), 500), { predictions: 1, auditEvents: 0, failedInstances: 0 })

    // The last slice's answer is withdrawn (store.deletePrediction); the study is sent again before any sweep.
    await store.deletePrediction(await kept(2000))
    await sent(store, 'api-key:other', 2900, '2')
    // old code: []
    t.same(await seen(store), ['2.2900'], 'sent again after its last record was withdrawn: the new sender\'s')
  })

  /**
   * `sends` (caller and seconds, series 1 for PACS1, 2 for PACS2, 3 for anyone else) recorded by a store run with
   * `listed` as STUDY_OWNERS, retention then taking what was sent before `expired` seconds; the read-all view of the
   * study as a store run with another list sees it (one store open at a time: PGlite's data directory is locked).
   */
  const afterRetention = async (t: Test, listed: string[] | undefined, sends: Array<[string, number]>, expired: number): Promise<(studyOwners: string[] | undefined) => Promise<string[]>> => {
    const opened = await options(t)
    const { store } = await RecordStore.open({ ...opened, studyOwners: listed } as StoreOptions)
    for (const [caller, seconds] of sends) await sent(store, caller, seconds, caller.endsWith('PACS1') ? '1' : caller.endsWith('PACS2') ? '2' : '3')
    t.same(await store.deleteExpired(at(expired), 500), { predictions: sends.filter(([, seconds]) => seconds < expired).length, auditEvents: 0, failedInstances: 0 })
    await store.close()
    return async (studyOwners) => {
      const { store } = await RecordStore.open({ ...opened, studyOwners } as StoreOptions)
      try {
        return await seen(store)
      } finally {
        await store.close()
      }
    }
  }

  t.test(`${engine}: under STUDY_OWNERS changed between runs, a study is whose it would be had retention deleted nothing`, async (t) => {
    // PACS2 sends first and in between; STUDY_OWNERS lists PACS1 alone while retention takes PACS2's slice at 0 s and
    // PACS1's at 10 s.
    const seenWith = await afterRetention(t, ['dicom:PACS1'], [['dicom:PACS2', 0], ['dicom:PACS1', 10], ['dicom:PACS2', 15], ['dicom:PACS1', 20], ['dicom:PACS1', 30], ['dicom:PACS2', 40]], 12)
    t.same(await seenWith(['dicom:PACS1']), ['1.20', '1.30'], 'PACS1\'s, the one listed')
    // old code (one owner kept per study, PACS1): PACS1's
    t.same(await seenWith(['dicom:PACS1', 'dicom:PACS2']), ['2.15', '2.40'], 'PACS2 listed too: PACS2\'s, whose first slice (0 s, kept) came before PACS1\'s')
    t.same(await seenWith(['dicom:PACS2']), ['2.15', '2.40'], 'PACS1 no longer listed: PACS2\'s')
    // old code: PACS1's
    t.same(await seenWith(undefined), ['2.15', '2.40'], 'no list: PACS2\'s, the first to send')

    // A workstation sends first, unlisted at last; no STUDY_OWNERS while retention takes its slice and PACS1's first.
    const listedLater = await afterRetention(t, undefined, [['api-key:workstation', 0], ['dicom:PACS1', 10], ['dicom:PACS2', 15], ['dicom:PACS1', 20]], 12)
    t.same(await listedLater(undefined), [], 'no list: the workstation\'s, none of whose slices is left')
    // old code (the workstation kept alone, passed over once unlisted): PACS2's ['2.15']
    t.same(await listedLater(['dicom:PACS1', 'dicom:PACS2']), ['1.20'], 'both PACS listed: PACS1\'s, whose first slice (10 s, kept) came before PACS2\'s')
    t.same(await listedLater(['dicom:PACS2']), ['2.15'], 'PACS2 alone: its')
  })
}
