import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import type { RecordsConfig } from '../plugins/app/records-config.js'
import { configRefusal, ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { dcmtk } from './helpers/dcmtk-clients.js'
import { ctSliceFromImage } from './helpers/dicom-writer.js'
import { fhirStub, until } from './helpers/fhir-stub.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { startPostgres } from './helpers/postgres.js'
import { recordsApp } from './records/suite.js'
import { RecordStore, type StoreOptions } from '../records/store.js'

// STUDY_OWNERS: only a listed caller (the PACS) can own a study. A workstation with the predict scope sends three key
// slices of a study through /predict a minute before the PACS forwards the full series to the DICOM node: without the
// list the workstation owns the study, and the read-all view and the DiagnosticReport pushed to the EHR are judged on
// its three slices. On both record stores: the embedded PGlite database and a real PostgreSQL server.

const work = await mkdtemp(join(tmpdir(), 'kidney-study-owners-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const server = await startPostgres()
t.teardown(async () => await server.destroy())
// A slice every model here calls Stone: a ct-kidney stone slice made DICOM (test/studies.test.ts says why).
const STONE_SLICE = join(work, 'stone.dcm')
await writeFile(STONE_SLICE, await ctSliceFromImage(await ctKidneyImage('test/stone', 0)))
const PACS = 'dicom:PACS1'

const backends: Array<{ engine: 'pglite' | 'postgres', records: () => Promise<RecordsConfig> }> = [
  { engine: 'pglite', records: async () => ({ ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'pglite-'))) }) },
  { engine: 'postgres', records: async () => ({ ...RECORDS_OFF, store: 'postgres', databaseUrl: await server.createDatabase(`owners_${Date.now()}`), poolSize: 2, timeoutMs: 5_000 }) }
]

/** A pushed report in short: its study, conclusion code, and per series its UID and instances received. */
function reportOf (report: any): { study: string, code: string, series: string[] } {
  const observations = report.contained.filter((r: any) => r.resourceType === 'Observation')
  return {
    study: report.imagingStudy[0].identifier.value.replace('urn:oid:', ''),
    code: report.conclusionCode?.[0].coding[0].code,
    series: observations.map((o: any) => `${(/^Series (\S+):/.exec(o.note[0].text) as RegExpExecArray)[1]} ` +
      `${o.component.find((c: any) => c.code.text === 'Instances received').valueQuantity.value as number} received`)
  }
}

for (const backend of backends) {
  t.test(`${backend.engine}: with STUDY_OWNERS naming the PACS, the workstation's earlier key slices neither make the read-all view nor the pushed report`, async (t) => {
    const keys = { workstation: 'workstation-0123456789ab', auditor: 'auditor-0123456789abcdef' }
    const stub = await fhirStub(t)
    const app = await recordsApp(t, { ...await backend.records(), studyOwners: [PACS] }, {
      auth: loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: `workstation:${keys.workstation}:predict,auditor:${keys.auditor}:records:read-all` }).auth,
      dicomNode: { ...loadConfig().dicomNode, port: 0 },
      series: { idleSeconds: 1, minAdjacentSlices: 2 },
      fhirPush: { ...loadConfig().fhirPush, url: stub.url }
    })
    // The PACS's series: six CT1 slices (Normal). The workstation's key images of the same study, sent first: three
    // ct-kidney stone slices (Stone) in a key-image series of their own; and a study of its own nobody else sent.
    const pacs = await writeCtSeries(join(work, `${backend.engine}-pacs`), { slices: 6 })
    const keyImages = await writeCtSeries(join(work, `${backend.engine}-key`), { slices: 3, studyInstanceUid: pacs.studyInstanceUid, source: () => STONE_SLICE })
    const alone = await writeCtSeries(join(work, `${backend.engine}-alone`), { slices: 1, source: () => STONE_SLICE })
    for (const file of [...keyImages.files, ...alone.files]) {
      const upload = fileUpload(await readFile(file), 'slice.dcm')
      const res = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': keys.workstation } })
      t.equal(res.statusCode, 200, res.body)
    }
    const stored = await dcmtk('storescu', ['-aec', 'KIDNEYSTONE', '-aet', 'PACS1', '127.0.0.1', String(app.dicomPort()), ...pacs.files])
    t.equal(stored.code, 0, stored.output.slice(-2000))

    const pushed = { study: pacs.studyInstanceUid, code: '281900007', series: [`${pacs.seriesInstanceUid} 6 received`] }
    // On the old code the workstation owned the study: its three Stone slices were pushed as the study's report, and
    // no report of the PACS's six instances ever came (this wait timed out).
    await until(() => stub.received.map((post) => post.body).some((report) => JSON.stringify(reportOf(report)) === JSON.stringify(pushed)), 'the PACS series pushed')
    t.same(stub.received.map((post) => post.body).map(reportOf).filter((report) => report.study === pacs.studyInstanceUid && report.code !== pushed.code), [],
      'no report of the study judged on the workstation\'s slices')
    const study = async (uid: string, key: string): Promise<{ status: number, verdict?: string, series?: string[] }> => {
      const res = await app.inject({ method: 'GET', url: `/studies/${uid}`, headers: { 'x-api-key': key } })
      const body = res.json()
      return { status: res.statusCode, ...(res.statusCode === 200 ? { verdict: body.verdict, series: body.series.map((s: any) => `${s.seriesInstanceUid as string} ${s.instances.received as number} received`) } : {}) }
    }
    // Old code: Stone, the key-image series of 3 alone.
    t.same(await study(pacs.studyInstanceUid, keys.auditor), { status: 200, verdict: 'Normal', series: [`${pacs.seriesInstanceUid} 6 received`] }, 'read-all: the PACS\'s rows')
    t.same(await study(pacs.studyInstanceUid, keys.workstation), { status: 200, verdict: 'Stone', series: [`${keyImages.seriesInstanceUid} 3 received`] }, 'the workstation\'s own view: its key images')

    // A study of unlisted callers alone has no owner: nothing of it counts for read-all readers (a study with nothing
    // recorded), and it is never pushed. It was final before the PACS's study, so the sweep that queued that one saw it.
    t.same(await study(alone.studyInstanceUid, keys.auditor), { status: 404 }, 'read-all: no study')
    t.same(await study(alone.studyInstanceUid, keys.workstation), { status: 200, verdict: 'Stone', series: [`${alone.seriesInstanceUid} 1 received`] }, 'its sender\'s own view')
    t.equal(await app.records.withPushQueue(async (q) => await q.state(alone.studyInstanceUid)), undefined, 'never queued')
    t.notOk(stub.received.map((post) => post.body).some((report) => reportOf(report).study === alone.studyInstanceUid), 'never pushed')
  })
}

// A JWT subject may hold any character but NUL: the callers travel to the database as one text[] parameter.
const ODD_SUBJECT = 'jwt:we"ird\\ {sub} NULL'
const OWNERS = [PACS, 'api-key:pacs', ODD_SUBJECT]
const storeOptions = async (engine: 'pglite' | 'postgres'): Promise<StoreOptions> => engine === 'pglite'
  ? { engine, dataDir: await emptyPGliteDataDir(await mkdtemp(join(work, 'store-'))), studyOwners: OWNERS }
  : { engine, url: await server.createDatabase(`owners_store_${Date.now()}`), poolSize: 2, timeoutMs: 5_000, migrationTimeoutMs: 60_000, studyOwners: OWNERS }

for (const { engine } of backends) {
  t.test(`${engine}: with STUDY_OWNERS, unlisted callers' rows count neither in the read-all rows nor in when a study is pushed, retention included`, async (t) => {
    const { store } = await RecordStore.open(await storeOptions(engine))
    t.teardown(async () => await store.close())
    const start = Date.now() - 3_600_000
    const at = (seconds: number): Date => new Date(start + seconds * 1000)
    const classified = async (study: string, caller: string, afterSeconds: number): Promise<void> => {
      const id = randomUUID()
      await store.savePrediction({
        id, caller, route: '/predict', createdAt: at(afterSeconds),
        input: { sha256: '0'.repeat(64), bytes: 1, format: 'dicom' },
        dicom: { studyInstanceUid: study, seriesInstanceUid: `${study}.${caller.length}`, sopInstanceUid: `${study}.${caller.length}.${afterSeconds}` },
        model: { name: 'kidney-stone-cnn', version: 'test', sha256: '0'.repeat(64), threshold: 0.5, temperature: 1 },
        prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, confidenceBand: 'high', timings: {}, answer: { id }
      })
    }
    const refused = async (study: string, caller: string, afterSeconds: number): Promise<void> =>
      await store.saveFailedInstance({ caller, route: 'DIMSE C-STORE', createdAt: at(afterSeconds), studyInstanceUid: study, seriesInstanceUid: `${study}.${caller.length}`, status: 415, code: 'UNSUPPORTED_DICOM_IMAGE' })
    const rows = async (study: string): Promise<string[]> => {
      const { instances, failures } = await store.readStudy(study)
      return [...instances.map((row) => `${row.series_instance_uid as string} classified`), ...failures.map((row) => `${row.series_instance_uid as string} ${row.code}`)]
    }

    // The workstation's key slices first, the PACS's series a minute later, the workstation again after the push.
    const study = '1.2.826.0.1.3680043.8.498.10'
    for (const second of [0, 1, 2]) await classified(study, 'api-key:workstation', second)
    for (const second of [60, 61, 62]) await classified(study, PACS, second)
    t.same(await rows(study), [`${study}.${PACS.length} classified`, `${study}.${PACS.length} classified`, `${study}.${PACS.length} classified`], 'the PACS\'s rows alone')
    // On the old code the workstation's rows made the study final at 32 s, and its report went out then.
    t.equal(await store.pushes.enqueueFinal(30, at(91)), 0, 'not final 29 s after the PACS\'s last instance')
    t.equal(await store.pushes.enqueueFinal(30, at(93)), 1, 'final 30 s after it')
    const [claimed] = await store.pushes.claimDue(1, 60)
    await store.pushes.pushed(claimed, 'a report', undefined)
    await classified(study, 'api-key:workstation', 200)
    // Retention takes the oldest rows, the PACS's among them: the workstation's newer row does not take the study over.
    await store.deleteExpired(at(100), 500)
    t.same(await rows(study), [], 'no owner left, nothing of a listed caller: nothing counts')
    t.equal(await store.pushes.enqueueFinal(30, at(240)), 0, 'not pushed again under the workstation\'s rows (old code: 1)')

    // Unlisted callers alone: never queued. A listed caller's refusals beside them: the study of a listed caller with
    // nothing classified, as without STUDY_OWNERS, and its report pushed.
    const unlisted = '1.2.826.0.1.3680043.8.498.11'
    await classified(unlisted, 'api-key:workstation', 300)
    await refused(unlisted, 'jwt:someone', 301)
    const refusedToPacs = '1.2.826.0.1.3680043.8.498.12'
    await classified(refusedToPacs, 'anonymous', 300)
    await refused(refusedToPacs, 'api-key:pacs', 301)
    t.same(await rows(unlisted), [])
    t.same(await rows(refusedToPacs), [`${refusedToPacs}.${'api-key:pacs'.length} UNSUPPORTED_DICOM_IMAGE`])
    t.equal(await store.pushes.enqueueFinal(30, at(400)), 1, 'one of the two queued')
    t.equal(await store.pushes.state(unlisted), undefined, 'unlisted callers alone: never queued')
    t.match(await store.pushes.state(refusedToPacs), { attempts: 0, pushed: false }, 'the listed caller\'s refusals: queued')

    // Callers with quotes, a backslash, braces, a comma or the word NULL are matched whole, listed or in an own view.
    const odd = '1.2.826.0.1.3680043.8.498.13'
    await classified(odd, 'jwt:x,y', 500)
    await classified(odd, ODD_SUBJECT, 501)
    t.same(await rows(odd), [`${odd}.${ODD_SUBJECT.length} classified`], 'the listed subject owns it')
    t.equal((await store.readStudy(odd, 'jwt:x,y')).instances.length, 1, 'an own view')
  })
}

t.test('STUDY_OWNERS: callers as the records name them; anything else stops start-up', async (t) => {
  t.equal(loadConfig({}).records.studyOwners, undefined, 'unset: any caller')
  t.equal(loadConfig({ STUDY_OWNERS: ' , ' }).records.studyOwners, undefined, 'no entry: any caller')
  t.same(loadConfig({ STUDY_OWNERS: 'dicom:PACS1, dicom:MAIN PACS,api-key:pacs,jwt:svc:pacs|1,anonymous' }).records.studyOwners,
    ['dicom:PACS1', 'dicom:MAIN PACS', 'api-key:pacs', 'jwt:svc:pacs|1', 'anonymous'])
  // Kept twice on the old code, and a study's refusals of that caller were then read (and counted) twice.
  t.same(loadConfig({ STUDY_OWNERS: 'dicom:PACS1,api-key:pacs, dicom:PACS1' }).records.studyOwners, ['dicom:PACS1', 'api-key:pacs'], 'once each, in listed order')
  const refusal = (value: string): string => configRefusal({ STUDY_OWNERS: value })
  for (const [value, entry] of [['PACS1', 'PACS1'], ['dicom:PACS1,DICOM:PACS2', 'DICOM:PACS2'], ['dicom:', 'dicom:'], ['dicom:A-TITLE-LONGER-THAN-16', 'dicom:A-TITLE-LONGER-THAN-16'],
    ['dicom:BACK\\SLASH', 'dicom:BACK\\SLASH'], ['api-key:a:b', 'api-key:a:b'], ['jwt:', 'jwt:'], ['user:alice', 'user:alice'], ['Anonymous', 'Anonymous']]) {
    t.equal(refusal(value), `Invalid records settings: STUDY_OWNERS entry ${JSON.stringify(entry)} names no caller: give callers as the records name them, ` +
      'comma-separated: dicom:<calling AE title>, api-key:<name>, jwt:<sub> or anonymous', value)
  }
})
