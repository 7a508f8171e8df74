import { createServer, type IncomingMessage } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { backoffSeconds } from '../plugins/app/fhir-push.js'
import { loadConfig } from '../plugins/app/config.js'
import { fileUpload, RECORDS_OFF } from './helper.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'
import { recordsApp } from './records/suite.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// FHIR push against a small local FHIR stub: it refuses the first attempts with 503, then accepts with 201 and a
// Location, as a FHIR server does; the service retries with backoff and records the push in the records database.

const work = await mkdtemp(join(tmpdir(), 'kidney-fhir-push-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const validate = fhirR4Validator('DiagnosticReport')

interface Received { at: number, path: string, headers: IncomingMessage['headers'], body: any }

/** A FHIR stub answering each POST with the next status of `statuses` (the last one repeats). */
async function fhirStub (t: Test, statuses: number[]): Promise<{ url: string, received: Received[] }> {
  const received: Received[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      received.push({ at: Date.now(), path: request.url ?? '', headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString()) })
      const status = statuses[Math.min(received.length - 1, statuses.length - 1)]
      if (status === 201) response.setHeader('location', `/fhir/DiagnosticReport/${received.length}/_history/1`)
      response.writeHead(status, { 'content-type': 'application/fhir+json' }).end(JSON.stringify(status === 201 ? { resourceType: 'DiagnosticReport' } : { resourceType: 'OperationOutcome' }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/fhir`, received }
}

async function until (condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (await condition()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

t.test('backoff doubles from 1 s and stops growing at 5 minutes', async (t) => {
  t.same([1, 2, 3, 4, 9, 10, 20].map(backoffSeconds), [1, 2, 4, 8, 256, 300, 300])
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

  // Nothing new arrives: no further push. A new instance makes a new version of the study, pushed again once final.
  await new Promise((resolve) => setTimeout(resolve, 2_500))
  t.equal(stub.received.length, 3, 'a pushed study is not pushed again while it does not change')
  const more = await writeCtSeries(join(work, 'more'), { slices: 1, studyInstanceUid: series.studyInstanceUid })
  const upload = fileUpload(await readFile(more.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  await until(() => stub.received.length >= 4, 'the new version pushed')
  t.equal(stub.received[3].body.contained.filter((r: any) => r.resourceType === 'Observation').length, 2, 'with the new series')
})

t.test('a 4xx other than 408/429 is not retried: the push is given up at once', async (t) => {
  const stub = await fhirStub(t, [422])
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data-422')) }, {
    series: { idleSeconds: 1, minAdjacentSlices: 2 },
    fhirPush: { ...loadConfig().fhirPush, url: stub.url }
  })
  const series = await writeCtSeries(join(work, 'refused'), { slices: 1 })
  const upload = fileUpload(await readFile(series.files[0]), 'slice.dcm')
  t.equal((await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: upload.headers })).statusCode, 200)
  await until(async () => (await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)))?.gaveUp === true, 'the push given up')
  t.match(await app.records.withPushQueue(async (q) => await q.state(series.studyInstanceUid)), { attempts: 1, pushed: false, gaveUp: true, lastError: 'HTTP 422' })
  t.equal(stub.received[0].headers.authorization, undefined, 'no token configured, none sent')
})
