import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { loadConfig, type AppConfig } from '../../plugins/app/config.js'
import type { RecordsConfig } from '../../plugins/app/records-config.js'
import { sha256Hex, type AuditEvent, type PredictionRecord } from '../../records/record.js'
import { databaseInstant } from '../helpers/database-instant.js'
import { openPGlite } from '../../records/pglite-driver.js'
import { openPostgres } from '../../records/postgres-driver.js'
import { RecordStore } from '../../records/store.js'
import { build, ctKidneyImage, fileUpload, multipart, SHARED, UUID } from '../helper.js'
import { hs256Token } from '../helpers/jwt.js'

/** Where one run of the records tests keeps its records: PGlite in a directory, or a real PostgreSQL server. */
export interface RecordsBackend {
  engine: 'pglite' | 'postgres'
  /** Records settings for one test: every app built with them shares one store. */
  records: () => Promise<RecordsConfig>
}

export const CT_SMALL = join(SHARED, 'data/dicom/ct-small-pydicom.dcm')
/** pydicom's CT_small.dcm: ImagePositionPatient (-158.135803, -179.035797, -75.699997), axial orientation, InstanceNumber 1. */
const CT_SMALL_POSITION = { instanceNumber: 1, slicePosition: -75.699997 }

export async function recordsApp (t: Test, records: RecordsConfig, config: Partial<AppConfig> = {}): Promise<FastifyInstance> {
  return await build(t, { config: { ...config, records } })
}

export async function predictJson (app: FastifyInstance, bytes: Buffer, filename = 'slice.jpg', headers: Record<string, string> = {}): Promise<{ statusCode: number, body: Record<string, any> }> {
  const upload = fileUpload(bytes, filename)
  const res = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, ...headers } })
  return { statusCode: res.statusCode, body: res.json() }
}

/** Audit events are written after the answer is sent: wait (bounded) until `count` of those `wanted` have arrived; oldest first. */
async function auditEventsSince (app: FastifyInstance, since: Date, count: number, wanted: (event: AuditEvent) => boolean = () => true): Promise<AuditEvent[]> {
  const read = async (): Promise<AuditEvent[]> => {
    const events: AuditEvent[] = []
    let cursor: string | undefined
    do {
      const page = await app.records.listAuditEvents({ since: databaseInstant(since), limit: 200, cursor })
      events.push(...page.items)
      cursor = page.next
    } while (cursor !== undefined)
    return events.reverse().filter(wanted)
  }
  for (let attempt = 0; attempt < 100; attempt++) {
    const events = await read()
    if (events.length >= count) return events
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return await read()
}

/** A record written straight to the store (to control its time), whose answer is a real /predict answer re-labelled. */
function syntheticRecord (template: PredictionRecord, overrides: { createdAt: Date, prediction: 'Normal' | 'Stone', study: string }): PredictionRecord {
  const id = randomUUID()
  return {
    ...template,
    id,
    createdAt: overrides.createdAt,
    prediction: overrides.prediction,
    dicom: { studyInstanceUid: overrides.study },
    answer: { ...template.answer, id, prediction: overrides.prediction, classIndex: overrides.prediction === 'Stone' ? 1 : 0 }
  }
}

const KEYS = { alice: 'alice-0123456789abcdef', bob: 'bob-0123456789abcdefgh', auditor: 'auditor-0123456789abcdef' }
const SECRET = 'a-test-only-hs256-secret-of-at-least-32-bytes'

export function recordsSuite (t: Test, backend: RecordsBackend): void {
  // One app on the default settings serves the tests that need nothing else (each app loads the model and opens the
  // store: seconds on this machine); the tests keep to their own records by time, study UID or id.
  let shared: Promise<FastifyInstance> | undefined
  const sharedApp = async (): Promise<FastifyInstance> => await (shared ??= backend.records().then(async (records) => await recordsApp(t, records)))

  t.test(`${backend.engine}: every /predict and batch answer is recorded with all its fields before it is given, and read back exactly`, async (t) => {
    const app = await sharedApp()
    const jpeg = await ctKidneyImage('test/stone')
    const image = await predictJson(app, jpeg)
    t.equal(image.statusCode, 200)
    const read = await app.inject({ method: 'GET', url: `/predictions/${image.body.id}` })
    t.equal(read.statusCode, 200)
    const stored = read.json()
    t.match(stored.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.equal(stored.caller, 'anonymous')
    t.same({ ...stored, createdAt: undefined, caller: undefined }, { ...image.body, createdAt: undefined, caller: undefined }, 'the answer, exactly')

    const dicomBytes = await readFile(CT_SMALL)
    const dicom = await predictJson(app, dicomBytes, 'DOE^JANE.dcm')
    t.equal(dicom.statusCode, 200)
    const record = await app.records.getPredictionRecord(dicom.body.id)
    if (record === undefined) throw new Error('no record')
    const classifier = app.model.get()
    t.match(record, {
      id: dicom.body.id,
      caller: 'anonymous',
      route: '/predict',
      input: { sha256: sha256Hex(dicomBytes), bytes: dicomBytes.length, format: 'dicom', uploadFile: `${dicom.body.id}.dcm` },
      dicom: { ...dicom.body.dicom, instanceNumber: CT_SMALL_POSITION.instanceNumber },
      model: { name: classifier.spec.name, version: classifier.spec.version, sha256: classifier.modelSha256, threshold: classifier.spec.threshold, temperature: classifier.spec.temperature },
      prediction: dicom.body.prediction,
      probabilities: dicom.body.probabilities,
      confidenceBand: dicom.body.confidenceBand,
      answer: dicom.body
    })
    t.ok(Math.abs((record.dicom?.slicePosition ?? NaN) - CT_SMALL_POSITION.slicePosition) < 1e-6, 'slice position along the slice normal')
    t.match(record.requestId, UUID)
    t.same(Object.keys(record.timings).sort(), ['batchWait', 'decode', 'imageWait', 'inference', 'preprocess'])
    t.same(await readFile(join(app.uploads.dir, record.input.uploadFile ?? '')), dicomBytes, 'the upload an overlay is drawn from')
    const again = await classifier.classify(dicomBytes)
    t.same(record.cam?.dims, [2, 14, 14])
    t.ok(record.cam !== undefined && again.cam !== undefined && record.cam.values.every((v, i) => Math.abs(v - (again.cam?.values[i] ?? NaN)) < 1e-5),
      'the stored activation maps are the ones the model computes for this image')
    t.notOk(JSON.stringify(record).includes('DOE'), 'no file name, no patient data')

    const batch = await app.inject({
      method: 'POST',
      url: '/predict/batch',
      ...multipart([
        { name: 'files', filename: 'notes.txt', contentType: 'text/plain', data: Buffer.from('not an image') },
        { name: 'files', filename: 'a.jpg', contentType: 'image/jpeg', data: jpeg },
        { name: 'files', filename: 'b.dcm', contentType: 'application/dicom', data: dicomBytes }
      ])
    })
    const results = batch.json().results
    t.equal(results[0].error.code, 'UNSUPPORTED_MEDIA_TYPE')
    const batchRecords = await Promise.all(results.slice(1).map(async (entry: { result: { id: string } }) => await app.records.getPredictionRecord(entry.result.id)))
    t.same(batchRecords.map((r) => r?.route), ['/predict/batch', '/predict/batch'])
    t.equal(batchRecords[0]?.requestId, batchRecords[1]?.requestId, 'one request id for the whole batch')
    t.same(batchRecords.map((r) => r?.answer), results.slice(1).map((entry: { result: unknown }) => entry.result))
    const [refusedFile] = await auditEventsSince(app, record.createdAt, 1, (event) => event.fileIndex === 0)
    t.match(refusedFile, { route: '/predict/batch', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', caller: 'anonymous', requestId: batchRecords[0]?.requestId })
  })

  t.test(`${backend.engine}: refused requests leave audit events (code, status, caller, route, time), never bytes or file names`, async (t) => {
    const app = await sharedApp()
    const since = new Date()
    const text = Buffer.from('Patient DOE^JANE, notes')
    t.equal((await predictJson(app, text, 'DOE^JANE-kidney.png')).statusCode, 415)
    t.equal((await app.inject({ method: 'POST', url: '/predict', ...multipart([{ name: 'note', data: Buffer.from('x') }]) })).statusCode, 400)
    t.equal((await app.inject({ method: 'GET', url: '/predictions/DOE-JANE' })).statusCode, 400)
    t.equal((await app.inject({ method: 'GET', url: `/predictions/${randomUUID()}` })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: '/records?patient=DOE^JANE' })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
    const events = await auditEventsSince(app, since, 5)
    t.same(events.map((e) => [e.method, e.route, e.status, e.code]), [
      ['POST', '/predict', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      ['POST', '/predict', 400, 'NO_FILE'],
      ['GET', '/predictions/:id', 400, 'VALIDATION_ERROR'],
      ['GET', '/predictions/:id', 404, 'PREDICTION_NOT_FOUND'],
      ['GET', '(no route)', 404, 'NOT_FOUND']
    ])
    t.ok(events.every((e) => e.caller === 'anonymous' && UUID.test(e.requestId ?? '') && e.createdAt >= new Date(since.getTime() - 1)))
    t.notOk(JSON.stringify(events).includes('DOE'), 'no file name, no URL, no bytes')

    // The same events over HTTP, newest first, two to a page; the listing's own refusals come after `until`.
    const until = new Date(events[4].createdAt.getTime() + 1).toISOString()
    const pages: Array<Array<[string, string]>> = []
    let cursor: string | undefined
    do {
      const res = await app.inject({ method: 'GET', url: '/audit-events', query: { since: since.toISOString(), until, limit: '2', ...(cursor === undefined ? {} : { cursor }) } })
      t.equal(res.statusCode, 200)
      pages.push(res.json().items.map((e: { route: string, code: string }) => [e.route, e.code]))
      cursor = res.json().next
    } while (cursor !== undefined && pages.length < 10)
    t.same(pages.flat(), events.map((e) => [e.route, e.code]).reverse(), 'GET /audit-events: every event, newest first, across pages')
    t.same(pages.map((p) => p.length), [2, 2, 1])
    const coded = await app.inject({ method: 'GET', url: '/audit-events', query: { since: since.toISOString(), code: 'NO_FILE' } })
    t.same(coded.json().items.map((e: { route: string, status: number }) => [e.route, e.status]), [['/predict', 400]], 'filtered by code')
    const foreign = Buffer.from(JSON.stringify([`${since.toISOString().slice(0, 23)}000Z`, randomUUID()])).toString('base64url')
    const refused = await app.inject({ method: 'GET', url: '/audit-events', query: { cursor: foreign } })
    t.same([refused.statusCode, refused.json().code], [400, 'INVALID_CURSOR'], 'a /predictions cursor is not an /audit-events cursor')
    const impossible = Buffer.from(JSON.stringify(['2026-02-30T10:00:00.000000Z', '17'])).toString('base64url')
    const day = await app.inject({ method: 'GET', url: '/audit-events', query: { cursor: impossible } })
    t.same([day.statusCode, day.json().code], [400, 'INVALID_CURSOR'], 'a cursor with a day that does not exist is refused before the database')
  })

  t.test(`${backend.engine}: GET /predictions pages newest first by cursor, stable under equal times, with filters`, async (t) => {
    const app = await sharedApp()
    const { body } = await predictJson(app, await ctKidneyImage('test/normal'))
    const template = await app.records.getPredictionRecord(body.id)
    if (template === undefined) throw new Error('no record')
    const study = `1.2.826.0.1.3680043.8.498.${Date.now()}.${Math.floor(Math.random() * 1e6)}`
    const time = new Date(Date.now() - 60_000)
    const older = new Date(time.getTime() - 1_000)
    const made = [
      ...['Stone', 'Normal', 'Stone', 'Normal', 'Stone'].map((prediction) => syntheticRecord(template, { createdAt: time, prediction: prediction as 'Stone' | 'Normal', study })),
      ...['Normal', 'Stone'].map((prediction) => syntheticRecord(template, { createdAt: older, prediction: prediction as 'Stone' | 'Normal', study }))
    ]
    await Promise.all(made.map(async (record) => await app.records.savePrediction(record)))
    const expected = [...made].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1)).map((r) => r.id)

    const pages: string[][] = []
    let cursor: string | undefined
    do {
      const res = await app.inject({ method: 'GET', url: '/predictions', query: { studyInstanceUid: study, limit: '2', ...(cursor === undefined ? {} : { cursor }) } })
      t.equal(res.statusCode, 200)
      pages.push(res.json().items.map((item: { id: string }) => item.id))
      cursor = res.json().next
    } while (cursor !== undefined && pages.length < 10)
    t.same(pages.map((p) => p.length), [2, 2, 2, 1], 'four pages of two; no cursor after the last')
    t.same(pages.flat(), expected, 'every record once, newest first, ties in id order')

    const ids = async (query: Record<string, string>): Promise<string[]> =>
      (await app.inject({ method: 'GET', url: '/predictions', query: { studyInstanceUid: study, ...query } })).json().items.map((item: { id: string }) => item.id)
    t.same(await ids({ prediction: 'Stone' }), expected.filter((id) => made.find((r) => r.id === id)?.prediction === 'Stone'))
    t.same(await ids({ since: time.toISOString() }), expected.slice(0, 5), 'since is inclusive')
    t.same(await ids({ until: time.toISOString() }), expected.slice(5), 'until is exclusive')
    // Finer than a millisecond (RFC 3339 allows any number of digits): cut to the millisecond, both took `time` itself.
    const later = (digits: string): string => `${time.toISOString().slice(0, 23)}${digits}Z`
    t.same(await ids({ since: later('5') }), [], 'since half a millisecond after: not the rows at the millisecond')
    t.same(await ids({ until: later('5') }), expected, 'until half a millisecond after: the rows at the millisecond too')
    t.same(await ids({ since: later('0001') }), [], 'since 100 ns after: rounded up to the next microsecond')
    t.same(await ids({ since: later('000'), until: later('0001') }), expected.slice(0, 5), 'the rows at the millisecond, 100 ns wide')
    const item = (await app.inject({ method: 'GET', url: '/predictions', query: { studyInstanceUid: study, limit: '1' } })).json().items[0]
    t.same(item, { ...made.find((r) => r.id === expected[0])?.answer, createdAt: time.toISOString(), caller: 'anonymous' })

    const bad = await app.inject({ method: 'GET', url: '/predictions', query: { cursor: Buffer.from('["yesterday","x"]').toString('base64url') } })
    t.equal(bad.json().code, 'INVALID_CURSOR')
    t.equal((await app.inject({ method: 'GET', url: '/predictions', query: { limit: '1000' } })).statusCode, 400)
  })

  t.test(`${backend.engine}: times, ids and cursors the database cannot read are 400 before they reach it, not a 503`, async (t) => {
    const app = await sharedApp()
    const code = async (url: string): Promise<[number, string]> => {
      const res = await app.inject({ method: 'GET', url })
      return [res.statusCode, res.json().code]
    }
    const nested = Buffer.from(JSON.stringify([['2030-01-01T00:00:00.000000Z'], '5'])).toString('base64url')
    const cases: Array<[string, number, string]> = [
      ['/audit-events?since=2016-12-31T23:59:60Z', 400, 'VALIDATION_ERROR'], // a leap second: valid RFC 3339, no Date
      ['/predictions?since=0000-01-01T00:00:00Z', 400, 'VALIDATION_ERROR'],
      ['/predictions?since=0001-01-01T00:00:00%2B14:00', 400, 'VALIDATION_ERROR'], // year 0 once in UTC
      ['/audit-events?until=9999-12-31T23:59:59-23:59', 400, 'VALIDATION_ERROR'], // year 10000 in UTC
      [`/predictions/urn:uuid:${randomUUID()}`, 400, 'VALIDATION_ERROR'],
      [`/predictions/urn:uuid:${randomUUID()}/overlay.png`, 400, 'VALIDATION_ERROR'],
      [`/audit-events?cursor=${nested}`, 400, 'INVALID_CURSOR'],
      ['/predictions?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z&limit=1', 200, ''], // the edges themselves
      // A window that ends before it begins: an empty page on the old code, as if nothing had been recorded.
      ['/predictions?since=2026-12-05T09:00:00Z&until=2026-12-05T07:00:00Z', 400, 'VALIDATION_ERROR'],
      ['/audit-events?since=2026-12-05T07:00:01Z&until=2026-12-05T07:00:00Z', 400, 'VALIDATION_ERROR'],
      ['/audit-events?since=2026-12-05T08:00:00%2B01:00&until=2026-12-05T07:30:00Z', 200, ''] // 07:00 UTC: compared as instants
    ]
    for (const [url, status, expected] of cases) {
      const [got, gotCode] = await code(url)
      t.same([got, got === 200 ? '' : gotCode], [status, expected], url)
    }
    const swapped = await app.inject({ method: 'GET', url: '/predictions?since=2026-12-05T09:00:00Z&until=2026-12-05T07:00:00Z' })
    t.match(swapped.json().message, /^`since` is after `until`/)
  })

  t.test(`${backend.engine}: the retention sweep deletes what is older than RECORD_RETENTION, in bounded passes, and nothing newer`, async (t) => {
    const app = await sharedApp()
    t.equal(app.config.records.retentionMs, 365 * 86_400_000, 'RECORD_RETENTION defaults to 365 days')
    const { body } = await predictJson(app, await ctKidneyImage('test/stone'))
    const template = await app.records.getPredictionRecord(body.id)
    if (template === undefined) throw new Error('no record')
    const study = `1.2.826.0.1.3680043.8.498.${Date.now()}.2`
    const old = new Date(Date.now() - 400 * 86_400_000)
    const expired = Array.from({ length: 2_100 }, () => syntheticRecord(template, { createdAt: old, prediction: 'Normal', study }))
    await Promise.all(expired.map(async (record) => await app.records.savePrediction(record)))
    for (let i = 0; i < 3; i++) app.records.audit({ createdAt: old, caller: 'anonymous', method: 'GET', route: '/predictions/:id', status: 404, code: 'PREDICTION_NOT_FOUND' })
    await auditEventsSince(app, old, 3, (event) => event.createdAt.getTime() === old.getTime())

    t.same(await app.records.sweepExpired(), { predictions: 2_000, auditEvents: 3, failedInstances: 0, backlog: true }, 'one pass stops at its bound')
    t.same(await app.records.sweepExpired(), { predictions: 100, auditEvents: 0, failedInstances: 0, backlog: false }, 'the next one finishes')
    t.equal(await app.records.getPredictionRecord(expired[0].id), undefined)
    t.equal((await app.inject({ method: 'GET', url: `/predictions/${body.id}` })).statusCode, 200, 'a recent record stays')
    // the last test on the shared app: an embedded database is open in one app at a time
    await app.close()
  })

  t.test(`${backend.engine}: with authentication a caller reads only its own records, unless it has the records:read-all scope`, async (t) => {
    const env = {
      AUTH_MODE: 'any',
      AUTH_API_KEYS: `alice:${KEYS.alice}:predict,bob:${KEYS.bob}:predict,auditor:${KEYS.auditor}:records:read-all`,
      AUTH_JWT_SECRET: SECRET,
      AUTH_JWT_ISSUER: 'https://idp.test',
      AUTH_JWT_AUDIENCE: 'kidney-stone',
      AUTH_JWT_SCOPE_CLAIM: 'realm_access.roles'
    }
    const app = await recordsApp(t, await backend.records(), { auth: loadConfig(env).auth, rateLimit: { max: 0, windowMs: 1000 } })
    const since = new Date(Date.now() - 1)
    const { statusCode, body } = await predictJson(app, await ctKidneyImage('test/stone'), 'a.jpg', { 'x-api-key': KEYS.alice })
    t.equal(statusCode, 200)
    const token = (claims: Record<string, unknown>): string => hs256Token(SECRET, {
      iss: 'https://idp.test', aud: 'kidney-stone', sub: 'dr-who', exp: Math.floor(Date.now() / 1000) + 300, ...claims
    })
    const as = async (headers: Record<string, string>): Promise<[number, string | undefined]> => {
      const res = await app.inject({ method: 'GET', url: `/predictions/${body.id}`, headers })
      return [res.statusCode, res.statusCode === 200 ? res.json().caller : res.json().code]
    }
    t.same(await as({ 'x-api-key': KEYS.alice }), [200, 'api-key:alice'], 'its own')
    t.same(await as({ 'x-api-key': KEYS.bob }), [404, 'PREDICTION_NOT_FOUND'], 'someone else\'s does not exist for this caller')
    t.same(await as({ 'x-api-key': KEYS.auditor }), [200, 'api-key:alice'], 'an API key with records:read-all')
    t.same(await as({ authorization: `Bearer ${token({ realm_access: { roles: ['records:read-all'] } })}` }), [200, 'api-key:alice'], 'a JWT with the scope at AUTH_JWT_SCOPE_CLAIM')
    t.same(await as({ authorization: `Bearer ${token({ scope: 'records:read-all' })}` }), [404, 'PREDICTION_NOT_FOUND'], 'the scope elsewhere in the token does not count')
    t.same(await as({}), [401, 'UNAUTHORIZED'])

    const listed = async (key: string): Promise<string[]> => (await app.inject({
      method: 'GET', url: '/predictions', query: { since: since.toISOString() }, headers: { 'x-api-key': key }
    })).json().items.map((item: { id: string }) => item.id)
    t.same(await listed(KEYS.bob), [], 'bob lists none of alice\'s')
    t.same(await listed(KEYS.alice), [body.id])
    t.ok((await listed(KEYS.auditor)).includes(body.id))

    t.equal((await app.inject({ method: 'GET', url: `/predictions/${randomUUID()}`, headers: { 'x-api-key': KEYS.bob } })).statusCode, 404)
    const refusals = async (key: string, expected: number): Promise<string[]> => {
      for (let attempt = 0; attempt < 100; attempt++) { // an event is written just after its refusal is sent
        const res = await app.inject({ method: 'GET', url: '/audit-events', query: { since: since.toISOString(), code: 'PREDICTION_NOT_FOUND' }, headers: { 'x-api-key': key } })
        const callers: string[] = res.json().items.map((e: { caller: string }) => e.caller)
        if (callers.length >= expected) return callers
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return []
    }
    t.same(await refusals(KEYS.bob, 2), ['api-key:bob', 'api-key:bob'], 'bob reads his own refusals (the 404 above and the one before it)')
    t.same((await refusals(KEYS.auditor, 3)).sort(), ['api-key:bob', 'api-key:bob', 'jwt:dr-who'], 'records:read-all reads everyone\'s')
    t.same(await refusals(KEYS.alice, 0), [], 'alice reads none of bob\'s')
  })

  t.test(`${backend.engine}: with RECORDS_API off the records are kept but not served`, async (t) => {
    const app = await recordsApp(t, { ...await backend.records(), api: false })
    const { body } = await predictJson(app, await ctKidneyImage('test/stone'))
    const res = await app.inject({ method: 'GET', url: `/predictions/${body.id}` })
    t.equal(res.statusCode, 403)
    t.equal(res.json().code, 'RECORDS_API_DISABLED')
    t.match(res.json().message, /RECORDS_API=on/)
    t.equal((await app.records.getPredictionRecord(body.id))?.id, body.id)
  })

  t.test(`${backend.engine}: a record the database refuses fails alone, with the database's reason, and the store writes on`, async (t) => {
    const app = await recordsApp(t, await backend.records())
    const first = await predictJson(app, await ctKidneyImage('test/stone'))
    const record = await app.records.getPredictionRecord(first.body.id)
    if (record === undefined) throw new Error('no record')
    // the same id again: the prepared insert is refused by the primary key
    await t.rejects(app.records.savePrediction(record), { code: 'RECORDS_UNAVAILABLE', message: /SQLSTATE 23505/ })
    // sent in the same turn, the two go to the database as one group: the refused row must not take the other down
    const fresh = syntheticRecord(record, { createdAt: new Date(), prediction: 'Normal', study: '1.2.3' })
    const [again, alongside] = await Promise.allSettled([app.records.savePrediction(record), app.records.savePrediction(fresh)])
    t.match(again, { status: 'rejected', reason: { code: 'RECORDS_UNAVAILABLE', message: /SQLSTATE 23505/ } })
    t.equal(alongside.status, 'fulfilled', 'the record written in the same group is written')
    t.equal((await app.records.getPredictionRecord(fresh.id))?.id, fresh.id)
    const next = await predictJson(app, await ctKidneyImage('test/normal'))
    t.equal(next.statusCode, 200)
    const read = await app.inject({ method: 'GET', url: `/predictions/${next.body.id}` })
    t.same({ ...read.json(), createdAt: undefined, caller: undefined }, { ...next.body, createdAt: undefined, caller: undefined }, 'the next answer is recorded, exactly')
  })

  t.test(`${backend.engine}: a record is written as one row, its activation maps inside it, not in the TOAST table`, async (t) => {
    const records = await backend.records()
    const app = await recordsApp(t, records)
    t.equal((await predictJson(app, await ctKidneyImage('test/stone'))).statusCode, 200)
    await app.close()
    const driver = records.store === 'postgres'
      ? await openPostgres({ url: records.databaseUrl ?? '', poolSize: 1, timeoutMs: 5_000 })
      : await openPGlite(records.dataDir)
    t.teardown(async () => await driver.close())
    const [{ toast }] = await driver.query<{ toast: string }>("SELECT reltoastrelid::regclass::text AS toast FROM pg_class WHERE relname = 'predictions'")
    const [{ rows }] = await driver.query<{ rows: number }>('SELECT count(*)::int AS rows FROM predictions')
    const [{ chunks }] = await driver.query<{ chunks: number }>(`SELECT count(*)::int AS chunks FROM ${toast}`)
    t.ok(rows >= 1, 'records were written')
    t.equal(chunks, 0, 'a 3 kB row above the default 2 kB toast threshold moved its maps out of line: a second row write per record')
  })

  t.test(`${backend.engine}: records survive a restart; migrations are applied once`, async (t) => {
    const records = await backend.records()
    const first = await recordsApp(t, records)
    const { body } = await predictJson(first, await ctKidneyImage('test/stone'))
    const before = (await first.inject({ method: 'GET', url: `/predictions/${body.id}` })).json()
    await first.close()

    const { store, applied } = await RecordStore.open(records.store === 'postgres'
      ? { engine: 'postgres', url: records.databaseUrl ?? '', poolSize: 1, timeoutMs: 5_000, migrationTimeoutMs: 600_000 }
      : { engine: 'pglite', dataDir: records.dataDir })
    t.same(applied, [], 'opening again applies nothing')
    await store.close()

    const second = await recordsApp(t, records)
    const after = await second.inject({ method: 'GET', url: `/predictions/${body.id}` })
    t.equal(after.statusCode, 200)
    t.same(after.json(), before, 'the same answer, time and caller after the restart')
  })
}
