import { execFile } from 'node:child_process'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { freePort } from '../bench/processes.js'
import { loadConfig } from '../plugins/app/config.js'
import { GroupWriter } from '../records/group-writer.js'
import { build, ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { mountTmpfs } from './helpers/tmpfs.js'

// The records policy that needs no database to be up: configuration, what is answered when the store cannot be
// reached (a real PostgreSQL client against a loopback port where nothing listens), and the group writer.

t.test('records configuration: embedded by default, a server with DATABASE_URL, API on loopback binds without a proxy only without auth', async (t) => {
  const defaults = loadConfig({}).records
  t.match(defaults, { store: 'pglite', poolSize: 5, timeoutMs: 5_000, retentionMs: 365 * 86_400_000, required: true, api: true, readAllScope: 'records:read-all' })
  t.match(defaults.dataDir, /\/var\/data$/)
  t.equal(loadConfig({ HOST: '0.0.0.0' }).records.api, false, 'off on a public bind without authentication')
  // A reverse proxy on this machine (TRUST_PROXY) forwards the network's requests to the loopback bind: on the old code
  // the records were everyone's to read through it.
  t.equal(loadConfig({ TRUST_PROXY: '127.0.0.1' }).records.api, false, 'off on a loopback bind behind a proxy without authentication')
  t.equal(loadConfig({ HOST: '::1', TRUST_PROXY: 'true' }).records.api, false)
  t.equal(loadConfig({ TRUST_PROXY: '127.0.0.1', RECORDS_API: 'on' }).records.api, true)
  t.equal(loadConfig({ TRUST_PROXY: '127.0.0.1', AUTH_MODE: 'api-key', AUTH_API_KEYS: 'a:0123456789abcdefgh' }).records.api, true)
  t.equal(loadConfig({ HOST: '0.0.0.0', RECORDS_API: 'on' }).records.api, true)
  t.equal(loadConfig({ HOST: '0.0.0.0', AUTH_MODE: 'api-key', AUTH_API_KEYS: 'a:0123456789abcdefgh' }).records.api, true, 'on with authentication')
  t.equal(loadConfig({ RECORDS_API: 'off' }).records.api, false)
  t.equal(loadConfig({ RECORD_RETENTION: 'forever' }).records.retentionMs, 0)
  t.equal(loadConfig({ RECORDS_REQUIRED: 'false' }).records.required, false)
  t.match(loadConfig({ DATABASE_URL: 'postgres://svc:pw@db:5432/kidney' }).records, { store: 'postgres', databaseUrl: 'postgres://svc:pw@db:5432/kidney' })
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/kidney', RECORDS_STORE: 'off' }).records.store, 'off')
  const dir = t.testdir({})
  await writeFile(join(dir, 'url'), 'postgresql://svc:secret@db/kidney\n')
  t.equal(loadConfig({ DATABASE_URL_FILE: join(dir, 'url') }).records.databaseUrl, 'postgresql://svc:secret@db/kidney', 'from a mounted secret')
  t.throws(() => loadConfig({ RECORDS_STORE: 'postgres' }), /RECORDS_STORE=postgres needs DATABASE_URL/)
  t.throws(() => loadConfig({ RECORD_RETENTION: '1y' }), /RECORD_RETENTION/)
  // On the old code 0d was 0 ms, the value that means forever: an age of zero kept everything. An age whose cutoff falls
  // before the year 0001 (1,000,000 days) was taken too, and the sweep failed every minute ("time zone displacement out
  // of range" from the database).
  for (const value of ['0d', '0s', '000h', '1000000d', `${'9'.repeat(400)}d`]) {
    t.throws(() => loadConfig({ RECORD_RETENTION: value }), new RegExp(`^Invalid environment variable RECORD_RETENTION=${value}: give an age above zero and up to 1000 years \\(365000d\\), or forever`), value)
  }
  t.equal(loadConfig({ RECORD_RETENTION: '365000d' }).records.retentionMs, 365_000 * 86_400_000)
  // Kept no longer than SERIES_IDLE_SECONDS, a study's instances were deleted before its series were final: GET /studies
  // never called one final and the FHIR push never sent a study (all of these were accepted on the old code).
  for (const [retention, idle] of [['30s', '30'], ['1s', '30'], ['1h', '3600']]) {
    t.throws(() => loadConfig({ RECORD_RETENTION: retention, SERIES_IDLE_SECONDS: idle }),
      new RegExp(`^Invalid environment variable RECORD_RETENTION=${retention}: records must be kept longer than SERIES_IDLE_SECONDS \\(${idle} s\\)`), retention)
  }
  t.equal(loadConfig({ RECORD_RETENTION: '31s' }).records.retentionMs, 31_000)
  t.equal(loadConfig({ RECORD_RETENTION: '2s', SERIES_IDLE_SECONDS: '1' }).records.retentionMs, 2_000)
  t.equal(loadConfig({ RECORD_RETENTION: '1s', RECORDS_STORE: 'off' }).records.retentionMs, 1_000, 'nothing is kept: no study to be final')
  let message = ''
  try { loadConfig({ DATABASE_URL: 'mysql://root:hunter2@db/kidney' }) } catch (error) { message = (error as Error).message }
  t.match(message, /DATABASE_URL must be a postgres/)
  t.notMatch(message, /hunter2/, 'a bad URL is never echoed: it may carry a password')
  // pg parses the URL only at its first connection: these started, and every write failed 'the database cannot be
  // reached: Invalid URL', each minute, for as long as the service ran (a base64 password holds / and +).
  for (const url of ['postgres://svc:ab/cd+ef==@db/kidney', 'postgres://svc:hunter2#@db/kidney', 'postgres://svc:hunter2@db:99999/kidney', 'postgresql://svc:hunter2@[::1/kidney']) {
    let refused = ''
    try { loadConfig({ DATABASE_URL: url }) } catch (error) { refused = (error as Error).message }
    t.match(refused, /DATABASE_URL cannot be read as a URL/, url)
    t.notMatch(refused, /hunter2|ab\/cd/, 'and is not echoed')
  }
  t.equal(loadConfig({ DATABASE_URL: 'postgres://svc:ab%2Fcd%2Bef%3D%3D@db/kidney' }).records.store, 'postgres', 'the same password percent-encoded')
  t.equal(loadConfig({ DATABASE_URL: 'postgres://svc:pw@/kidney?host=/var/run/postgresql' }).records.store, 'postgres', 'a Unix socket')
  // pg's parse reads the files sslrootcert, sslcert and sslkey name: one missing was refused as a URL to percent-encode.
  for (const option of ['sslrootcert', 'sslcert', 'sslkey']) {
    let refused = ''
    try { loadConfig({ DATABASE_URL: `postgres://svc:hunter2@db/kidney?sslmode=verify-full&${option}=/nonexistent/file.pem` }) } catch (error) { refused = (error as Error).message }
    t.match(refused, /DATABASE_URL names a file the service cannot read \(ENOENT\): check its sslrootcert, sslcert and sslkey/, option)
    t.notMatch(refused, /percent-encode|hunter2/, 'not blamed on the spelling, not echoed')
  }
})

async function unreachable (t: Parameters<typeof build>[0], required: boolean, uploadDir?: string): Promise<Awaited<ReturnType<typeof build>>> {
  const databaseUrl = `postgres://kidney@127.0.0.1:${await freePort()}/records`
  const records = { ...RECORDS_OFF, store: 'postgres' as const, databaseUrl, timeoutMs: 500, required }
  const app = await build(t, { config: { records, ...(uploadDir === undefined ? {} : { uploadDir }) } }, { waitForModel: false })
  await app.model.loaded
  return app
}

t.test('when the store cannot be reached, /predict answers 503 RECORDS_UNAVAILABLE with Retry-After and readiness says why', async (t) => {
  const app = await unreachable(t, true)
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'RECORDS_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '5')
  t.match(res.json().message, /refused the connection|not open|opening/)
  t.same(await readdir(app.uploads.dir), [], 'no upload kept for an answer that was not given')
  const ready = await app.inject({ method: 'GET', url: '/health/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().code, 'RECORDS_UNAVAILABLE')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /kidney_records_write_failures_total\{kind="prediction"\} 1/)
  t.equal(app.records.state, 'opening', 'still trying to connect in the background')
})

interface CloseLine { plan?: { silent: number[], refused: number[], hung: number[] }, mode?: string, delay?: number, closed?: boolean, alive: string[], escaped?: string[] }

t.test('closing during the background reconnect, at any moment, waits for no backoff or attempt and leaves nothing running', async (t) => {
  // In a child process that nothing else holds open: a close that waited on the reconnect's backoff timer (which holds
  // nothing open) let that process drain mid-close; under tap that was "error thrown in teardown" and the file's
  // remaining tests left in queue.
  const script = new URL('./helpers/close-while-reconnecting.ts', import.meta.url).pathname
  const child = await new Promise<{ code: number | string | null, stdout: string }>((resolve) => {
    // A hung close is ended here, with the child's own account, not by tap's limit for the whole file.
    execFile(process.execPath, ['--import=tsx', script], { timeout: 180_000 }, (error, stdout, stderr) => {
      if (error !== null) t.comment(`child: ${error.message}\n${stderr}`)
      resolve({ code: error === null ? 0 : (error.code ?? error.signal ?? null), stdout })
    })
  })
  const lines = child.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as CloseLine)
  t.equal(child.code, 0, 'the child did not crash')
  const plan = lines[0]?.plan ?? { silent: [], refused: [], hung: [] }
  t.ok(plan.silent.length > 0 && plan.refused.length > 0, 'the child says which closes it makes')
  const closes = lines.filter((line) => line.closed === true)
  // A close left waiting on something that holds nothing open lets the child drain and exit before printing its line.
  t.same(closes.map(({ mode, delay }) => `${mode} ${delay}`),
    [...plan.silent.map((d) => `silent ${d}`), ...plan.hung.map((d) => `hung ${d}`), ...plan.refused.map((d) => `refused ${d}`)],
    'every close resolved, in a connect attempt, in a backoff, and in an attempt that would wait an hour')
  for (const line of closes) t.same(line.alive, [], `${line.mode} ${line.delay} ms: no timer (unref'd ones included) or socket left once closed`)
  t.same(lines.at(-1), { alive: [], escaped: [] }, 'no error escaped (no unhandled rejection, no uncaught exception)')
})

t.test('RECORDS_REQUIRED=false answers without a record, logs the loss and counts it', async (t) => {
  const app = await unreachable(t, false)
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(res.statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'ready: answers are still given')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /kidney_records_lost_total\{kind="prediction"\} 1/)
})

t.test('RECORDS_REQUIRED=false: an upload that cannot be kept is refused as that, and counts as no answer given without a record', async (t) => {
  // The upload and its record are written side by side: the record fails (no server), then the upload (a full disk).
  const disk = await mountTmpfs(t, '1m')
  await writeFile(join(disk.dir, 'filler'), Buffer.alloc(2 * 1024 * 1024)).catch(() => undefined)
  const app = await unreachable(t, false, disk.dir)
  const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'UPLOADS_UNAVAILABLE')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /kidney_records_write_failures_total\{kind="prediction"\} 1/, 'the record could not be written')
  t.notMatch(metrics, /kidney_records_lost_total\{kind="prediction"\} [1-9]/, 'yet no answer was given, so none without a record')
  t.notMatch(metrics, /kidney_records_withdrawn_total\{result="\w+"\} [1-9]/, 'and there is no record to withdraw')
})

t.test('with records off nothing is recorded and the records routes say so', async (t) => {
  const app = await build(t)
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(await ctKidneyImage('test/stone')) })).statusCode, 200)
  const res = await app.inject({ method: 'GET', url: '/predictions' })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'RECORDS_API_DISABLED')
})

t.test('the group writer writes what queues up during a write in one call, and fails only that call\'s items', async (t) => {
  const calls: number[][] = []
  let release: () => void = () => {}
  const writer = new GroupWriter<number>(async (items) => {
    calls.push(items)
    if (items.includes(13)) throw new Error('refused')
    if (calls.length === 1) await new Promise<void>((resolve) => { release = resolve })
  }, 4)
  const first = writer.submit(1)
  await new Promise((resolve) => setImmediate(resolve))
  const waiting = [2, 3, 13, 4, 5, 6].map(async (n) => await writer.submit(n).then(() => n, () => -n))
  release()
  await first
  t.same(await Promise.all(waiting), [-2, -3, -13, -4, 5, 6], 'the failed call\'s items are rejected, the next call\'s resolved')
  t.same(calls, [[1], [2, 3, 13, 4], [5, 6]], 'at most 4 per call, in order')
  await writer.drain()
  t.equal(writer.pending, 0)
})

t.test('the group writer writes a group refused for one item\'s data again item by item: only that item fails', async (t) => {
  const calls: string[][] = []
  const rowFault = new Error('row refused')
  const writer = new GroupWriter<string>(async (items) => {
    calls.push(items)
    if (items.includes('bad')) throw items.length === 1 ? rowFault : Object.assign(new Error('group refused'), { row: true })
    if (items.includes('down')) throw new Error('database down')
  }, 8, 1, (error) => (error as { row?: boolean }).row === true)
  const outcome = async (item: string): Promise<string> => await writer.submit(item).then(() => item, (error: Error) => `${item}: ${error.message}`)
  t.same(await Promise.all(['a', 'bad', 'b'].map(outcome)), ['a', 'bad: row refused', 'b'])
  t.same(calls, [['a', 'bad', 'b'], ['a'], ['bad'], ['b']], 'one group, then each item alone')
  calls.length = 0
  t.same(await Promise.all(['c', 'down'].map(outcome)), ['c: database down', 'down: database down'], 'any other failure fails the group')
  t.same(calls, [['c', 'down']], 'without writing it again')
})

t.test('the group writer runs up to maxInFlight writes at once: items need not wait for the write before them', async (t) => {
  const calls: number[][] = []
  const releases: Array<() => void> = []
  const writer = new GroupWriter<number>(async (items) => {
    calls.push(items)
    await new Promise<void>((resolve) => releases.push(resolve))
  }, 2, 2)
  const written: number[] = []
  const all = [1, 2, 3, 4, 5].map(async (n) => { await writer.submit(n); written.push(n) })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(calls, [[1, 2], [3, 4]], 'two writes of at most 2 items started together; the fifth item waits')
  releases[1]()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(written.sort(), [3, 4], 'the second write committed before the first')
  t.same(calls, [[1, 2], [3, 4], [5]], 'and its place went to the waiting item')
  releases[0]()
  releases[2]()
  await Promise.all(all)
  await writer.drain()
  t.same(written.sort(), [1, 2, 3, 4, 5])
})

t.test('the group writer fails an item that waited maxWaitMs to be sent, unwritten: how late a row commits is bounded', async (t) => {
  const calls: number[][] = []
  let release: () => void = () => {}
  const writer = new GroupWriter<number>(async (items) => {
    calls.push(items)
    if (calls.length === 1) await new Promise<void>((resolve) => { release = resolve })
  }, 4, 1, () => false, 20)
  const first = writer.submit(1)
  await new Promise((resolve) => setImmediate(resolve))
  const waiting = [2, 3].map(async (n) => await writer.submit(n).then(() => 'written', (error: Error) => error.message))
  // the first write holds the queue past the 20 ms: nothing after it is sent
  await sleep(60)
  release()
  await first
  t.same(await Promise.all(waiting), Array(2).fill('records store: the write waited more than 0.02 s to be sent to the database'))
  t.same(calls, [[1]], 'only the first item was written (before: [[1], [2, 3]])')
  await writer.drain()
  t.equal(writer.pending, 0)
})
