import { mkdtemp, open, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { RecordStoreError } from '../records/errors.js'
import { openPGlite, stalledReason, WAL_FAILED } from '../records/pglite-driver.js'
import { ctKidneyImage, RECORDS_OFF } from './helper.js'
import { mountTmpfs } from './helpers/tmpfs.js'
import { predictJson, recordsApp, recordsSuite, type RecordsBackend } from './records/suite.js'
import { uploadRefusedTests } from './records/upload-refused.js'

// The records test set on the embedded store (the default): one PGlite database for the whole file, opened and
// closed by each test's app in turn (creating one costs seconds, and PGlite serves one process at a time).

const dataDir = await mkdtemp(join(tmpdir(), 'kidney-records-pglite-'))
t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))

const backend: RecordsBackend = { engine: 'pglite', records: async () => ({ ...RECORDS_OFF, store: 'pglite', dataDir }) }
recordsSuite(t, backend)
uploadRefusedTests(t, backend)

t.test('pglite: its disk full, /predict answers 503 RECORDS_UNAVAILABLE saying so, keeps no upload, and records again once space is freed', async (t) => {
  // A real full file system: a 120 MiB tmpfs (CI runs as root) holding the database (about 40 MiB), then filled.
  const { dir } = await mountTmpfs(t, '120m')
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: join(dir, 'data') })
  const slice = await ctKidneyImage('test/stone')
  t.equal((await predictJson(app, slice)).statusCode, 200)
  let answered = 1

  const filler = await open(join(dir, 'filler'), 'w')
  const chunk = Buffer.alloc(1024 * 1024)
  try {
    for (;;) await filler.write(chunk)
  } catch (error) {
    t.equal((error as NodeJS.ErrnoException).code, 'ENOSPC', 'the file system is full')
  } finally {
    await filler.close()
  }
  // PostgreSQL fails a write once it needs a new page (the first may still fit in pages it has): a bounded few
  let refused: Awaited<ReturnType<typeof predictJson>> | undefined
  for (let i = 0; i < 40 && refused === undefined; i++) {
    const answer = await predictJson(app, slice)
    if (answer.statusCode === 200) answered++
    else refused = answer
  }
  t.match(refused, { statusCode: 503, body: { code: 'RECORDS_UNAVAILABLE', message: /\(the database's disk is full\)/ } })
  t.equal((await readdir(app.uploads.dir)).length, answered, 'an upload kept for each answer given, none for the refusal')
  const notReady = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(notReady.statusCode, 503, 'readiness turns 503 while predictions cannot be recorded')
  t.match(notReady.json(), { code: 'RECORDS_UNAVAILABLE', message: /last prediction could not be recorded: the database's disk is full/ })
  await rm(join(dir, 'filler'))
  t.equal((await predictJson(app, slice)).statusCode, 200, 'space freed: recorded again, no restart')
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready again once a prediction is recorded')
})

t.test('pglite: a data directory on a full or read-only file system cannot be opened, and the reason says which; freed, it opens', async (t) => {
  // 2 MiB: initdb stops part way (the database needs about 40 MiB), inside PGlite's file system, whose error is no Error
  const tmpfs = await mountTmpfs(t, '2m')
  const dataDir = join(tmpfs.dir, 'data')
  const full = await openPGlite(dataDir).then(() => undefined, (error: unknown) => error)
  t.type(full, RecordStoreError)
  t.match((full as RecordStoreError).reason, /cannot be opened: its file system is full \(ENOSPC\)$/)
  t.match((full as Error).cause, { message: 'file system error ENOSPC' }, 'the log\'s cause is named too, not [object Object]')
  t.same(await readdir(dataDir).then((names) => names.filter((name) => name !== 'records')), [], 'no lock left behind')

  await tmpfs.remount('ro')
  const readOnly = await openPGlite(dataDir).then(() => undefined, (error: unknown) => error)
  t.match((readOnly as RecordStoreError).reason, /cannot be opened: its file system is read-only \(EROFS\)$/)

  // space given: the half-created database is created again over, no hand work needed
  await tmpfs.remount('rw,size=120m')
  const driver = await openPGlite(dataDir)
  t.same(await driver.query('SELECT 1 AS one'), [{ one: 1 }])
  await driver.close()
})

t.test('pglite: a write-ahead log that cannot be written stops the database, and every statement then fails at once saying why, not never', async (t) => {
  // A new WAL segment (16 MiB) on a full disk: PostgreSQL PANICs there; PGlite reported the error and then answered
  // no statement again, nor closed (every records read and write of the service waited for HANDLER_TIMEOUT_MS).
  const { dir } = await mountTmpfs(t, '120m')
  const lost: string[] = []
  const driver = await openPGlite(join(dir, 'data'), undefined, (reason) => lost.push(reason))
  await driver.exec('CREATE TABLE kept (x text)')
  await driver.query("INSERT INTO kept VALUES ('before')")
  const filler = await open(join(dir, 'filler'), 'w')
  try {
    for (;;) await filler.write(Buffer.alloc(1024 * 1024))
  } catch {} finally {
    await filler.close()
  }
  await driver.query('SELECT pg_switch_wal()')
  const walWrite = await driver.query("INSERT INTO kept VALUES ('after')").then(() => undefined, (error: unknown) => error)
  t.match((walWrite as RecordStoreError).reason, /disk is full/, 'the write that needed a new segment fails')
  // a bound on a hang, not on speed: the answer comes at once, or never
  const never = async (): Promise<string> => await new Promise((resolve) => setTimeout(() => resolve('no answer'), 30_000).unref())
  const next = await Promise.race([driver.query('SELECT 1').then(() => 'answered', (error: unknown) => (error as RecordStoreError).reason), never()])
  t.equal(next, WAL_FAILED, 'the next statement fails with the reason')
  t.same(lost, [WAL_FAILED], 'told once')
  t.equal(await Promise.race([driver.close().then(() => 'closed'), never()]), 'closed', 'and the database closes')

  await rm(join(dir, 'filler'))
  const reopened = await openPGlite(join(dir, 'data'))
  t.same(await reopened.query('SELECT x FROM kept'), [{ x: 'before' }], 'a restart with room replays the log: what was committed is there')
  await reopened.close()
})

t.test('pglite: a statement unanswered for the stall limit stops the database; the service then fails liveness, readiness and /predict saying why', async (t) => {
  // Its VACUUM on a full disk was seen never to return, with no error before it: every statement behind it, and
  // readiness, waited HANDLER_TIMEOUT_MS, /health/live stayed 200 and freeing space did not help. A real stall
  // stands in for it here: pg_sleep past a stall limit of 1 s (PGLITE_STALL_LIMIT_S is at least a minute).
  const dir = await mkdtemp(join(tmpdir(), 'kidney-pglite-stall-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const lost: string[] = []
  const driver = await openPGlite(join(dir, 'driver'), undefined, (reason) => lost.push(reason), 1_000)
  t.same(await driver.query('SELECT pg_sleep(0.2)::text AS slept'), [{ slept: '' }], 'a statement within the limit is answered')
  const behind = driver.query('SELECT 1 AS behind').then(() => 'answered', (error: unknown) => (error as RecordStoreError).reason)
  const stalled = await driver.query('SELECT pg_sleep(30)').then(() => 'answered', (error: unknown) => (error as RecordStoreError).reason)
  t.equal(stalled, stalledReason(1_000), 'the stalled statement fails with the reason (old code: answered after 30 s)')
  t.equal(await behind, 'answered', 'one sent before it was answered first')
  t.equal(await driver.query('SELECT 1').then(() => 'answered', (error: unknown) => (error as RecordStoreError).reason), stalledReason(1_000), 'every later one fails at once')
  t.same(lost, [stalledReason(1_000)], 'told once')
  await driver.close()

  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: join(dir, 'service'), stallLimitMs: 1_000 })
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
  // The one way in from outside to a statement this long is the database itself: the store's own connection.
  const store = (app.records as unknown as { store: { driver: { query: (text: string) => Promise<unknown> } } }).store
  await store.driver.query('SELECT pg_sleep(30)').catch(() => {})
  const live = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(live.statusCode, 503, 'liveness fails: only a restart brings the store back')
  t.match(live.json(), { code: 'NOT_LIVE', message: `This instance cannot recover on its own (the records store: ${stalledReason(1_000)}); restart it.` })
  t.match((await app.inject({ method: 'GET', url: '/health/ready' })).json(), { code: 'RECORDS_UNAVAILABLE' })
  t.match((await predictJson(app, await ctKidneyImage('test/stone'))).body, { code: 'RECORDS_UNAVAILABLE' })
})
