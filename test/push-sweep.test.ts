import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { latestCommitMs, RecordStore } from '../records/store.js'
import { storeEngines } from './helpers/store-engines.js'

// The FHIR push sweep (PushQueue.enqueueFinal) reads 7 days of rows at a replica's first pass only; later passes read
// from where the pass before stopped, less SERIES_IDLE_SECONDS and an overlap for rows that became visible late: as
// late as a row can commit after its created_at (latestCommitMs: its wait to be sent, then on a server up to twice
// DATABASE_TIMEOUT_MS), and a margin for replicas' clocks.

const work = await mkdtemp(join(tmpdir(), 'kidney-push-sweep-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

for (const [engine, options] of storeEngines(join(work, 'data'), 'push_sweep')) {
  t.test(`${engine}: a later sweep still queues a study whose instance became visible after the sweep before it`, async (t) => {
    const opened = await options(t)
    let { store } = await RecordStore.open(opened)
    t.teardown(async () => await store.close())
    const idleSeconds = 30
    const instance = async (studyInstanceUid: string, createdAt: Date): Promise<void> =>
      await store.saveFailedInstance({ caller: 'anonymous', route: '/studies', createdAt, studyInstanceUid, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
    const now = Date.now()
    await instance('1.2.826.0.1.3680043.8.498.11', new Date(now - 2 * 86_400_000))
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now)), 1, 'the first sweep looks back days: a study of two days ago')
    // made 5 minutes before that sweep, visible only after it: a commit held up, another replica's clock behind ours
    await instance('1.2.826.0.1.3680043.8.498.12', new Date(now - 300_000))
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now + 5_000)), 1, 'the next sweep, 5 s later, still sees it')
    t.match(await store.pushes.state('1.2.826.0.1.3680043.8.498.12'), { attempts: 0, pushed: false })
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now + 10_000)), 0, 'and queues nothing twice')

    // visible only now, but made a day ago: past the overlap, so only a restart's first sweep finds it
    await instance('1.2.826.0.1.3680043.8.498.13', new Date(now - 86_400_000))
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now + 15_000)), 0, 'a later sweep reads no day-old rows')
    await store.close();
    ({ store } = await RecordStore.open(opened))
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now + 20_000)), 1, 'after a restart the first sweep looks back days again')
  })
}

for (const [engine, options] of storeEngines(join(work, 'late'), 'push_sweep_late')) {
  t.test(`${engine}: a later sweep queues a study whose instance committed as late after its time as the store lets it`, async (t) => {
    const engineOptions = await options(t)
    // DATABASE_TIMEOUT_MS of 20 minutes: a server may take 45 minutes from a row's created_at to its commit
    const opened = engineOptions.engine === 'postgres' ? { ...engineOptions, timeoutMs: 1_200_000 } : engineOptions
    const { store } = await RecordStore.open(opened)
    t.teardown(async () => await store.close())
    const idleSeconds = 30
    const now = Date.now()
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now)), 0, 'a first sweep, of nothing')
    // committed just after that sweep, as late after its created_at as the store lets a row commit
    await store.saveFailedInstance({
      caller: 'anonymous', route: '/studies', createdAt: new Date(now - latestCommitMs(opened)), studyInstanceUid: '1.2.826.0.1.3680043.8.498.14', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE'
    })
    t.equal(await store.pushes.enqueueFinal(idleSeconds, new Date(now + 5_000)), 1, 'the next sweep queues it (before: 0 on PostgreSQL, whose sweeps read 10 minutes back)')
  })
}
