import { getEventListeners } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { startService, type RunningServer } from '../bench/processes.js'
import { MIGRATION_LOCK_KEY, readMigrations } from '../records/migrate.js'
import { openPostgres } from '../records/postgres-driver.js'
import { RecordStore } from '../records/store.js'
import { ctKidneyImage, fileUpload, RECORDS_OFF, UUID } from './helper.js'
import { startPostgres } from './helpers/postgres.js'
import { recordsApp, recordsSuite, type RecordsBackend } from './records/suite.js'
import { uploadRefusedTests } from './records/upload-refused.js'

// The records test set on a real PostgreSQL server: a throwaway cluster (test/helpers/postgres.ts), a new database
// per test. Debian's server binaries come from scripts/install-postgres.sh (npm test's pretest): without them, this
// file fails, it does not skip.

const server = await startPostgres()
t.teardown(async () => await server.destroy())
let databases = 0
const VERSIONS = (await readMigrations()).map((m) => m.version)

const backend: RecordsBackend = {
  engine: 'postgres',
  records: async () => ({ ...RECORDS_OFF, store: 'postgres', databaseUrl: await server.createDatabase(`records_${++databases}`), poolSize: 4, timeoutMs: 5_000 })
}
recordsSuite(t, backend)
uploadRefusedTests(t, backend)

t.test('replicas starting together apply each migration once (advisory lock)', async (t) => {
  const url = await server.createDatabase('migrations')
  const opened = await Promise.all(Array.from({ length: 4 }, async () => await RecordStore.open({ engine: 'postgres', url, poolSize: 1, timeoutMs: 10_000, migrationTimeoutMs: 600_000 })))
  t.teardown(async () => { for (const { store } of opened) await store.close() })
  t.same(opened.map(({ applied }) => applied).sort((a, b) => b.length - a.length), [VERSIONS, [], [], []], 'one applies, the others find it done')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  t.teardown(async () => await client.end())
  t.same((await client.query('SELECT version FROM schema_migrations ORDER BY version')).rows, VERSIONS.map((version) => ({ version })))
})

/** Sessions of this database waiting for the migration lock. */
async function waitingForMigrationLock (client: pg.Client): Promise<number> {
  return Number((await client.query(
    "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_lock%'")).rows[0].n)
}

/** A new database whose migration lock another session (another replica, migrating) holds. */
async function lockedForMigration (t: Test, name: string): Promise<{ url: string, holder: pg.Client }> {
  const url = await server.createDatabase(name)
  const holder = new pg.Client({ connectionString: url })
  await holder.connect()
  t.teardown(async () => await holder.end())
  await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
  return { url, holder }
}

t.test('a store waits for another replica\'s migration past DATABASE_TIMEOUT_MS (DATABASE_MIGRATION_TIMEOUT_MS bounds it), then starts', async (t) => {
  const { url, holder } = await lockedForMigration(t, 'migration_wait')
  const timeoutMs = 200
  const opening = RecordStore.open({ engine: 'postgres', url, poolSize: 1, timeoutMs, migrationTimeoutMs: 600_000 })
    .then((opened) => opened, (error: Error) => error)
  // Another replica's migration outlasts the statement timeout, the server's and the client's second after it.
  await new Promise((resolve) => setTimeout(resolve, timeoutMs + 2_000))
  // On the old code 0 here: the open had failed at the statement timeout ('the database did not answer in time').
  t.equal(await waitingForMigrationLock(holder), 1, 'still waiting for the lock')
  await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
  const opened = await opening
  if (opened instanceof Error) return t.fail(`the store did not open: ${opened.message}`)
  t.teardown(async () => await opened.store.close())
  t.same(opened.applied, VERSIONS, 'then it migrates')
})

t.test('a store opening while another replica holds the migration lock is cut at once when its opening is aborted', async (t) => {
  const { url, holder } = await lockedForMigration(t, 'opening_cut')
  // an hour per statement: only the abort can end this open within the test
  const aborting = new AbortController()
  const opening = RecordStore.open({ engine: 'postgres', url, poolSize: 2, timeoutMs: 3_600_000, migrationTimeoutMs: 3_600_000 }, {}, aborting.signal)
  while (await waitingForMigrationLock(holder) === 0) await new Promise((resolve) => setTimeout(resolve, 50))
  aborting.abort()
  await t.rejects(opening, { name: 'RecordStoreError' }, 'the open fails at once, with the store\'s own error')
  await t.rejects(RecordStore.open({ engine: 'postgres', url, poolSize: 1, timeoutMs: 3_600_000, migrationTimeoutMs: 3_600_000 }, {}, aborting.signal), { name: 'RecordStoreError' }, 'an open after the abort does not start')
  // The server notices the cut connection once its lock wait ends: then it holds nothing and a replica migrates.
  await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
  const others = async (): Promise<number> => Number((await holder.query(
    'SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows[0].n)
  while (await others() > 0) await new Promise((resolve) => setTimeout(resolve, 50))
  const { store, applied } = await RecordStore.open({ engine: 'postgres', url, poolSize: 1, timeoutMs: 10_000, migrationTimeoutMs: 600_000 })
  await store.close()
  t.same(applied, VERSIONS, 'the next open applies every migration: the cut one applied none and left no lock')
})

t.test('a pool opened with an abort signal leaves no listener on it for connections that are gone', async (t) => {
  const signal = new AbortController().signal
  const driver = await openPostgres({ url: await server.createDatabase('signal_listeners'), poolSize: 2, timeoutMs: 10_000, signal })
  t.teardown(async () => await driver.close())
  // Each round the server ends every connection of the pool, and the next statement makes a new one.
  for (let round = 0; round < 12; round++) {
    await driver.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    await driver.query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => {})
    t.same(await driver.query('SELECT 1 AS one'), [{ one: 1 }])
  }
  // the pool's own abort listener and one per live connection (at most poolSize)
  t.ok(getEventListeners(signal, 'abort').length <= 1 + 2, `${getEventListeners(signal, 'abort').length} abort listeners after 12 rounds of new connections`)
})

t.test('two service processes on one PostgreSQL: a record written through one is read through the other', async (t) => {
  const url = await server.createDatabase('replicas')
  const work = await mkdtemp(join(tmpdir(), 'kidney-replicas-'))
  t.teardown(async () => await rm(work, { recursive: true, force: true }))
  const replica = async (name: string): Promise<RunningServer> => await startService(
    { DATABASE_URL: url, LOG_LEVEL: 'info', UPLOAD_DIR: join(work, `${name}-uploads`) }, join(work, `${name}.log`))
  const [a, b] = await Promise.all([replica('a'), replica('b')])
  t.teardown(async () => await Promise.all([a.stop(), b.stop()]))

  const form = new FormData()
  form.append('file', new Blob([await ctKidneyImage('test/stone') as BlobPart]), 'slice.jpg')
  const answer = await (await fetch(`${a.url}/predict`, { method: 'POST', body: form })).json()
  t.match(answer.id, UUID)
  const read = await fetch(`${b.url}/predictions/${answer.id as string}`)
  t.equal(read.status, 200)
  const stored = await read.json()
  t.same({ ...stored, createdAt: undefined, caller: undefined }, { ...answer, createdAt: undefined, caller: undefined })

  const ready = async (log: string): Promise<string> => (await readFile(join(work, log), 'utf8')).split('\n').find((line) => line.includes('records store ready')) ?? ''
  const migrations = await Promise.all(['a.log', 'b.log'].map(async (log) => JSON.parse(await ready(log)).migrationsApplied))
  t.same(migrations.sort((x, y) => y.length - x.length), [VERSIONS, []], 'the migrations ran in one process only')
})

t.test('a write held up past DATABASE_TIMEOUT_MS by a lock is answered 503 and never commits', async (t) => {
  const url = await server.createDatabase('late_commit')
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'postgres', databaseUrl: url, poolSize: 2, timeoutMs: 1_000 })
  const slice = await ctKidneyImage('test/normal')
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice) })).statusCode, 200, 'a first prediction is recorded')
  const holder = new pg.Client({ connectionString: url })
  await holder.connect()
  t.teardown(async () => await holder.end())
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE predictions IN SHARE ROW EXCLUSIVE MODE')
  const held = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice) })
  t.match(held.json(), { statusCode: 503, code: 'RECORDS_UNAVAILABLE' })
  await holder.query('COMMIT')
  const inserting = async (): Promise<number> => Number((await holder.query(
    "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'INSERT INTO predictions%'")).rows[0].n)
  while (await inserting() > 0) await new Promise((resolve) => setTimeout(resolve, 50))
  // On the old code (pg's query_timeout alone) the INSERT waited on, and committed once the lock was gone: 2 rows.
  t.equal((await holder.query('SELECT count(*)::integer AS n FROM predictions')).rows[0].n, 1, 'only the answered prediction has a record')
})

t.test('PostgreSQL stopped under load: every answer is 200 or 503 RECORDS_UNAVAILABLE, nothing is answered without a record, and service resumes', async (t) => {
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'postgres', databaseUrl: await server.createDatabase('outage'), poolSize: 4, timeoutMs: 2_000 })
  const jpeg = await ctKidneyImage('test/stone')
  type Answer = { phase: string, status: number, code?: string, retryAfter?: string, id?: string }
  const answers: Answer[] = []
  let phase = 'up'
  let stopping = false
  const client = async (): Promise<void> => {
    while (!stopping) {
      const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(jpeg) })
      const body = res.json()
      answers.push({ phase, status: res.statusCode, code: body.code, retryAfter: res.headers['retry-after'] as string | undefined, id: body.id })
    }
  }
  const until = async (condition: () => boolean, seconds: number): Promise<boolean> => {
    for (const end = Date.now() + seconds * 1000; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 50))) if (condition()) return true
    return condition()
  }
  const clients = Array.from({ length: 4 }, client)
  t.ok(await until(() => answers.length >= 8, 60), 'load is running')

  phase = 'down'
  await server.stop()
  t.ok(await until(() => answers.filter((a) => a.phase === 'down' && a.status === 503).length >= 8, 60), 'the outage is answered 503')
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'RECORDS_UNAVAILABLE')
  t.match(ready.json().message, /database/, 'readiness says why')

  phase = 'back'
  await server.start()
  t.ok(await until(() => answers.filter((a) => a.phase === 'back' && a.status === 200).length >= 8, 90), 'answers resume once the server is back')
  stopping = true
  await Promise.all(clients)

  const statuses = new Set(answers.map((a) => `${a.status} ${a.status === 200 ? '' : a.code ?? ''}`.trim()))
  t.same([...statuses].sort(), ['200', '503 RECORDS_UNAVAILABLE'], 'no 500, no other refusal')
  t.ok(answers.filter((a) => a.status === 503).every((a) => a.retryAfter === '5'), 'every 503 says when to retry')
  const answered = answers.filter((a) => a.status === 200)
  const missing = []
  for (const { id } of answered) {
    if ((await app.inject({ method: 'GET', url: `/predictions/${id ?? ''}` })).statusCode !== 200) missing.push(id)
  }
  t.same(missing, [], `each of the ${answered.length} answers given has its record`)
  t.equal((await readdir(app.uploads.dir)).length, answered.length, 'no upload is kept for an answer that was not given')
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready again')
  t.comment(`answers: ${answers.length} (${answered.length} 200, ${answers.length - answered.length} 503)`)
})
