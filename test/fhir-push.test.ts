import { randomUUID } from 'node:crypto'
import { createServer } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { backoffSeconds, reportSha256 } from '../plugins/app/fhir-push.js'
import { loadConfig } from '../plugins/app/config.js'
import { configRefusal, fileUpload, multipart, RECORDS_OFF } from './helper.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'
import { fhirStub, until } from './helpers/fhir-stub.js'
import { recordsApp } from './records/suite.js'
import type { PushQueue } from '../records/push-queue.js'
import { RecordStore } from '../records/store.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { storeEngines } from './helpers/store-engines.js'

// FHIR push against a small local FHIR stub: it refuses the first attempts with 503, then accepts with 201 and a
// Location, as a FHIR server does; the service retries with backoff and records the push in the records database.

const work = await mkdtemp(join(tmpdir(), 'kidney-fhir-push-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const validate = fhirR4Validator('DiagnosticReport')

/** kidney_fhir_pushes_total by result, as GET /metrics gives it. */
async function pushCounts (app: FastifyInstance): Promise<Record<string, number>> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  return Object.fromEntries([...text.matchAll(/^kidney_fhir_pushes_total\{result="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]))
}

t.test('backoff doubles from 1 s and stops growing at 5 minutes', async (t) => {
  t.same([1, 2, 3, 4, 9, 10, 20].map(backoffSeconds), [1, 2, 4, 8, 256, 300, 300])
})

t.test('a report\'s hash, which keeps a study sent again as it was from a second POST, covers the server it went to', async (t) => {
  const report = { resourceType: 'DiagnosticReport', status: 'final', issued: '2026-12-05T10:00:00Z', code: { text: 'CT' } } as unknown as Parameters<typeof reportSha256>[1]
  const url = 'https://ehr.example/fhir'
  t.equal(reportSha256(url, report), reportSha256(url, { ...report, issued: '2026-12-05T11:00:00Z' }), 'the same report at another time: the same')
  t.not(reportSha256(url, report), reportSha256('https://new-ehr.example/fhir', report), 'to a new FHIR_SERVER_URL: sent again')
  t.not(reportSha256(url, report), reportSha256(url, { ...report, status: 'partial' }), 'another report: sent')
})

t.test('a final study is POSTed as a DiagnosticReport, retried after 503s with growing delays, then recorded as pushed', async (t) => {
  const stub = await fhirStub(t, [503, 503, 201])
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data')) }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, url: stub.url, token: 'stub-token' }
  })
  const series = await writeCtSeries(join(work, 'series'), { slices: 3 })
  for (const file of series.files) {
    const upload = fileUpload(await readFile(file), 'slice.dcm')
    t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  }
  await until(() => stub.received.length >= 3, 'three POSTs')
  t.same(stub.received.map((r) => r.path), ['/fhir/DiagnosticReport', '/fhir/DiagnosticReport', '/fhir/DiagnosticReport'])
  t.equal(stub.received[0].headers.authorization, 'Bearer stub-token')
  t.match(stub.received[0].headers['content-type'], /^application\/fhir\+json/)
  t.ok(stub.received[2].at - stub.received[1].at >= stub.received[1].at - stub.received[0].at, 'the second wait is not shorter than the first')
  const report = stub.received[2].body
  t.ok(validate(report), JSON.stringify(validate.errors))
  t.equal(report.status, 'preliminary', 'only final studies are pushed')
  t.same(report.imagingStudy[0].identifier.value, `urn:oid:${series.studyInstanceUid}`)
  const study = (await app.inject({ method: 'GET', url: `/studies/${series.studyInstanceUid}` })).json()
  t.equal(report.conclusionCode[0].coding[0].code, study.verdict === 'Stone' ? '95570007' : '281900007', 'the report says what GET /studies says')
  await until(async () => (await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)))?.pushed === true, 'the push recorded')
  const state = await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid))
  t.match(state, { attempts: 3, pushed: true, gaveUp: false, location: '/fhir/DiagnosticReport/3/_history/1' })
  await until(async () => (await pushCounts(app)).accepted === 1, 'the accepted push counted')
  t.same(await pushCounts(app), { accepted: 1, failed: 2, gave_up: 0, unchanged: 0 }, 'each attempt counted in /metrics by its result')

  // Nothing new arrives: no further push. A new instance makes a new version of the study, pushed again once final.
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  t.equal(stub.received.length, 3, 'a pushed study is not pushed again while it does not change')
  const more = await writeCtSeries(join(work, 'more'), { slices: 1, studyInstanceUid: series.studyInstanceUid })
  const upload = fileUpload(await readFile(more.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  await until(() => stub.received.length >= 4, 'the new version pushed')
  t.equal(stub.received[3].body.contained.filter((r: any) => r.resourceType === 'Observation').length, 2, 'with the new series')
})

t.test('a study sent again as it was is not POSTed again: the same report is not a second DiagnosticReport; a changed one is', async (t) => {
  // A PACS sending a study again (a resend, a second routing rule) makes a new version of it (its newest instance is
  // newer), whose report is the same, word for word but its issued time. On the old code it was POSTed a second time.
  const stub = await fhirStub(t)
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-again')) }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, url: stub.url }
  })
  const send = async (files: string[]): Promise<void> => {
    for (const file of files) {
      const upload = fileUpload(await readFile(file), 'slice.dcm')
      t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
    }
  }
  const state = async (uid: string) => await app.records.withPushQueue(async (q) => await q.state(uid))
  /** Until the study's version after `version` is settled: pushed (or marked so), or a POST beyond `posts` arrived. */
  const settled = async (uid: string, version: string | undefined, posts: number): Promise<void> => await until(async () => {
    const now = await state(uid)
    return stub.received.length > posts || (now?.pushed === true && now.version !== version)
  }, 'the study settled')
  const series = await writeCtSeries(join(work, 'again'), { slices: 2 })
  await send(series.files)
  await settled(series.studyInstanceUid, undefined, 0)
  const first = await state(series.studyInstanceUid)
  t.equal(stub.received.length, 1, 'the study is pushed once')

  await send(series.files)
  await settled(series.studyInstanceUid, first?.version, 1)
  const again = await state(series.studyInstanceUid)
  t.equal(stub.received.length, 1, 'sent again as it was: no second POST (old code: 2)')
  t.not(again?.version, first?.version, 'a new version of the study, marked pushed')
  t.match(again, { pushed: true, location: first?.location }, 'with the Location of the report accepted')

  const more = await writeCtSeries(join(work, 'again-more'), { slices: 1, studyInstanceUid: series.studyInstanceUid })
  await send(more.files)
  await until(() => stub.received.length >= 2, 'the changed study pushed')
  t.equal(stub.received[1].body.contained.filter((r: any) => r.resourceType === 'Observation').length, 2, 'a new series: the new report is POSTed')
})

t.test('a study that receives a new series while its push waits to be retried is not pushed partial: one final report follows', async (t) => {
  // On the old code the retry read the study as it stood, the new series not final, and POSTed a 'partial' report,
  // recorded as the first version's push; the final report followed as a second one.
  let firstAnswered: () => void = () => {}
  const newSeriesRecorded = new Promise<void>((resolve) => { firstAnswered = resolve })
  const received: any[] = []
  const stub = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString()))
      // the first POST is held until the new series is recorded, then refused: its retry reads the study after it
      const answer = async (): Promise<void> => { if (received.length === 1) await newSeriesRecorded }
      void answer().then(() => response.writeHead(received.length === 1 ? 503 : 201).end())
    })
  })
  await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => stub.close(() => resolve())))
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-late-series')) }, {
    series: { idleSeconds: 10, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, url: `http://127.0.0.1:${(stub.address() as AddressInfo).port}/fhir` }
  })
  const classify = async (file: string): Promise<void> => {
    const upload = fileUpload(await readFile(file), 'slice.dcm')
    t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  }
  const first = await writeCtSeries(join(work, 'late-first'), { slices: 1 })
  await classify(first.files[0])
  await until(() => received.length === 1, 'the first POST')
  await classify((await writeCtSeries(join(work, 'late-second'), { slices: 1, studyInstanceUid: first.studyInstanceUid })).files[0])
  firstAnswered()
  await until(async () => (await app.records.withPushQueue(async (q) => await q.state(first.studyInstanceUid)))?.pushed === true, 'the push recorded')
  t.same(received.map((report) => [report.status, report.contained.filter((r: any) => r.resourceType === 'Observation').length]),
    [['preliminary', 1], ['preliminary', 2]], 'the refused final report, then the final one with both series; nothing partial')
})

t.test('a study is final by the service\'s clock, which wrote its instance times, whatever the database\'s clock says', async (t) => {
  // The database here runs on this host's clock; the service's clock is set an hour off it, as on a service host whose
  // clock is skewed from the database server's. On the old code (the database's now()) the study behind the database's
  // clock was queued at once, 59 minutes before it was final, and the study ahead of it was not queued before an hour.
  const { store } = await RecordStore.open({ engine: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-skew')) })
  t.teardown(async () => await store.close())
  const idleSeconds = 60
  const instance = async (studyInstanceUid: string, createdAt: Date): Promise<void> =>
    await store.saveFailedInstance({ caller: 'anonymous', route: '/studies', createdAt, studyInstanceUid, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
  const hour = 3_600_000
  const ahead = new Date(Date.now() + hour)
  await instance('1.2.826.0.1.3680043.8.498.1', new Date(ahead.getTime() - 2 * idleSeconds * 1000))
  t.equal(await store.pushes.enqueueFinal(idleSeconds, ahead), 1, 'service clock an hour ahead: two idle minutes make a study final')
  t.match(await store.pushes.state('1.2.826.0.1.3680043.8.498.1'), { attempts: 0, pushed: false })
  const behind = new Date(Date.now() - hour)
  await instance('1.2.826.0.1.3680043.8.498.2', behind)
  t.equal(await store.pushes.enqueueFinal(idleSeconds, behind), 0, 'service clock an hour behind: a study received just now is not final')
  t.equal(await store.pushes.state('1.2.826.0.1.3680043.8.498.2'), undefined)
})

for (const [engine, options] of storeEngines(join(work, 'data-owner'), 'pushes_owner')) t.test(`${engine}: another caller sending under a study's UID neither holds its push back nor sends the same report again`, async (t) => {
  // The report pushed is the owner's (the caller that first had an instance classified, GET /studies' read-all view);
  // on the old code every caller's rows decided when the study was final: alice's instance 25 s after the PACS'
  // series kept it from being final at 31 s, and her next one, 40 s in, queued a new version of the same report.
  const { store } = await RecordStore.open(await options(t))
  t.teardown(async () => await store.close())
  const study = '1.2.826.0.1.3680043.8.498.3'
  const start = Date.now() - 3_600_000
  const classified = async (caller: string, afterSeconds: number): Promise<void> => {
    const id = randomUUID()
    await store.savePrediction({
      id, caller, route: '/predict', createdAt: new Date(start + afterSeconds * 1000),
      input: { sha256: '0'.repeat(64), bytes: 1, format: 'dicom' },
      dicom: { studyInstanceUid: study, seriesInstanceUid: `${study}.${caller.length}`, sopInstanceUid: `${study}.${caller.length}.${afterSeconds}` },
      model: { name: 'kidney-stone-cnn', version: 'test', sha256: '0'.repeat(64), threshold: 0.5, temperature: 1 },
      prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, answer: { id }
    })
  }
  const at = (seconds: number): Date => new Date(start + seconds * 1000)
  await classified('api-key:pacs', 0)
  await classified('api-key:pacs', 1)
  await classified('api-key:alice', 25)
  await store.saveFailedInstance({ caller: 'api-key:alice', route: '/studies', createdAt: at(26), studyInstanceUid: study, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' })
  t.equal(await store.pushes.enqueueFinal(30, at(32)), 1, 'final 31 s after the owner\'s last instance')
  t.match(await store.pushes.state(study), { attempts: 0, pushed: false })
  await classified('api-key:alice', 40)
  t.equal(await store.pushes.enqueueFinal(30, at(80)), 0, 'the same version: not queued again')
  await classified('api-key:pacs', 90)
  t.equal(await store.pushes.enqueueFinal(30, at(121)), 1, 'the owner\'s new instance: a new version')
})

t.test('a 4xx other than 408/429 is not retried: the push is given up at once, and made again when the study is sent again', async (t) => {
  const stub = await fhirStub(t, [422, 201])
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-422')) }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, url: stub.url }
  })
  const series = await writeCtSeries(join(work, 'refused'), { slices: 1 })
  const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  await until(async () => (await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)))?.gaveUp === true, 'the push given up')
  t.match(await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)), { attempts: 1, pushed: false, gaveUp: true, lastError: 'HTTP 422' })
  await until(async () => (await pushCounts(app)).gave_up === 1, 'the given-up push counted')
  t.same(await pushCounts(app), { accepted: 0, failed: 0, gave_up: 1, unchanged: 0 }, 'counted as given up (KidneyStoneFhirPushGivenUp)')
  t.equal(stub.received[0].headers.authorization, undefined, 'no token configured, none sent')
  // The cause mended (the stub now accepts), the PACS sends the study again: a new version, pushed.
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  await until(async () => (await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)))?.pushed === true, 'the study sent again pushed')
  await until(async () => (await pushCounts(app)).accepted === 1, 'the accepted push counted')
  t.equal(stub.received.length, 2, 'the second version POSTed once')
})

t.test('a redirect is not followed: the report is not pushed as a GET, nor with the token to another address', async (t) => {
  // fetch follows redirects by default: a 303 (or a 301/302, as an http-to-https redirect sends) turns the POST into a
  // GET of <url>, whose 200 (a search Bundle) was taken for an accepted report; a 307 re-sends the report elsewhere.
  const elsewhere: Array<{ method?: string, path?: string, authorization?: string }> = []
  const other = createServer((request, response) => {
    elsewhere.push({ method: request.method, path: request.url, authorization: request.headers.authorization })
    request.resume()
    response.writeHead(200, { 'content-type': 'application/fhir+json' }).end('{"resourceType":"Bundle"}')
  })
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => other.close(() => resolve())))
  const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`
  for (const status of [303, 307]) {
    const redirecting = createServer((request, response) => {
      request.resume()
      response.writeHead(status, { location: `${otherUrl}/fhir/DiagnosticReport` }).end()
    })
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', () => resolve()))
    t.teardown(async () => await new Promise<void>((resolve) => redirecting.close(() => resolve())))
    const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, `data-${status}`)) }, {
      series: { idleSeconds: 1, minAdjacentSlices: 2 },
      fhirPush: { ...loadConfig().fhirPush, url: `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}/fhir`, token: 'stub-token' }
    })
    const series = await writeCtSeries(join(work, `redirected-${status}`), { slices: 1 })
    const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
    t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
    const settled = async (): Promise<Awaited<ReturnType<PushQueue['state']>>> => await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid))
    await until(async () => { const state = await settled(); return state?.pushed === true || state?.gaveUp === true }, `the ${status} push settled`)
    t.match(await settled(), { attempts: 1, pushed: false, gaveUp: true, lastError: `HTTP ${status}: the FHIR server redirects; set FHIR_SERVER_URL to the address it redirects to` },
      `${status}: given up as a refusal, not recorded as pushed`)
    await app.close()
  }
  t.same(elsewhere, [], 'nothing reached the address redirected to')
})

t.test('a FHIR server that never answers: one study is claimed at a time, and stopping the service cuts the POST, which is no attempt', async (t) => {
  const hanging: Array<import('node:http').ServerResponse> = []
  const stub = createServer((request, response) => { request.resume(); hanging.push(response) })
  await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => { stub.closeAllConnections(); await new Promise<void>((resolve) => stub.close(() => resolve())) })
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-hanging')) }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    // One attempt allowed: a cut POST counted as one gave the study up for good.
    fhirPush: { ...loadConfig().fhirPush, maxAttempts: 1, url: `http://127.0.0.1:${(stub.address() as AddressInfo).port}/fhir` }
  })
  // Three studies in one batch: final at the same moment, so the first pass finds all three due.
  const studies = await Promise.all(['a', 'b', 'c'].map(async (name) => await writeCtSeries(join(work, `hanging-${name}`), { slices: 1 })))
  const batch = multipart(await Promise.all(studies.map(async (series) => ({ name: 'files', filename: 'slice.dcm', contentType: 'application/dicom', data: await readFile(series.files[0]) }))))
  t.equal((await app.inject({ method: 'POST', url: '/predict/batch', ...batch })).json().summary.succeeded, 3)
  await until(() => hanging.length === 1, 'the first POST')
  const states = await Promise.all(studies.map(async (series) => await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid))))
  // A claim is a lease of 60 s and a POST may take 30: studies claimed together behind a hanging POST would pass
  // their lease before their own POST began, and another replica would claim and push them too.
  t.same(states.map((state) => state?.attempts ?? 0).sort(), [0, 0, 1], 'only the study being POSTed is claimed')
  // Stopping waits for the push pass: the hanging POST is cut instead of waited out for 30 s, longer than
  // SHUTDOWN_GRACE_MS gives the whole shutdown. The cut is ours, not the FHIR server's: the claim is undone.
  await app.close()
  t.equal(hanging.length, 1, 'nothing more was POSTed')
  const cut = studies.find((_, i) => states[i]?.attempts === 1)?.studyInstanceUid as string
  const accepting = await fhirStub(t, [201])
  const reopened = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: join(work, 'data-hanging') }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, maxAttempts: 1, url: accepting.url }
  })
  const state = async (): Promise<Awaited<ReturnType<PushQueue['state']>>> => await reopened.records.withPushQueue(async (q) => await q.state(cut))
  await until(async () => (await state())?.pushed === true || (await state())?.gaveUp === true, 'the cut study settled after the restart')
  t.match(await state(), { attempts: 1, pushed: true, gaveUp: false }, 'pushed by the next process, its one attempt still there to make')
})

t.test('FHIR_SERVER_URL that fetch cannot POST to stops start-up, without repeating a password', async (t) => {
  // fetch refuses a URL with user:password (basic authentication written the usual way) and one it cannot parse:
  // such a URL was accepted, and every push failed as 'could not be reached', ten times per study, then given up.
  const refusal = (url: string): string => configRefusal({ FHIR_SERVER_URL: url })
  t.equal(refusal('https://push:s3cret@fhir.hospital.example/fhir'),
    'Invalid FHIR push settings: FHIR_SERVER_URL carries a user name or password, which is never sent from a URL: give a bearer token in FHIR_SERVER_TOKEN(_FILE)')
  t.equal(refusal('http://[::1/fhir'), 'Invalid FHIR push settings: FHIR_SERVER_URL is not a URL')
  t.equal(refusal('https://fhir.hospital.example/fhir?tenant=a'),
    'Invalid FHIR push settings: FHIR_SERVER_URL has a query or fragment: give the FHIR base URL, to which /DiagnosticReport is appended')
  t.equal(loadConfig({ FHIR_SERVER_URL: 'https://fhir.hospital.example/fhir/' }).fhirPush.url, 'https://fhir.hospital.example/fhir', 'a base URL is taken, its trailing slash left off')
})
