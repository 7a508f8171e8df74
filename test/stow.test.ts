import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { ctSliceFromImage } from './helpers/dicom-writer.js'
import { CT_SOURCES, SOP_CLASS, writeCtSeries } from '../bench/ct-series.js'
import { recordsApp } from './records/suite.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { scratchDir, transcoded } from './helpers/dcmtk.js'
import { pydicomFile } from './helpers/pydicom-files.js'

// STOW-RS (POST /studies) with two clients nobody here wrote: curl, and dicomweb-client (the DICOMweb client of the
// OHIF viewer) in Node with an XMLHttpRequest implementation (xhr2), as a browser viewer would send.

const require = createRequire(import.meta.url)
const run = promisify(execFile)
const work = await mkdtemp(join(tmpdir(), 'kidney-stow-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data')) })
await app.listen({ port: 0, host: '127.0.0.1' })
const http = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

const FAILURE_REASON = '00081197'
const SOP_INSTANCE = '00081155'

/** A multipart/related body of DICOM parts, written to a file for curl --data-binary. */
async function relatedBody (files: string[], boundary: string): Promise<Buffer> {
  const parts = await Promise.all(files.map(async (file) => Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), await readFile(file), Buffer.from('\r\n')
  ])))
  return Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)])
}

t.test('curl: a CT series and an MR instance in one request: 202, ReferencedSOPSequence and FailedSOPSequence', async (t) => {
  const series = await writeCtSeries(join(work, 'curl'), { slices: 4 })
  const mr = await writeCtSeries(join(work, 'curl-mr'), { slices: 1, studyInstanceUid: series.studyInstanceUid, attributes: { SOPClassUID: SOP_CLASS.mr, Modality: 'MR' } })
  const body = join(work, 'body.bin')
  await writeFile(body, await relatedBody([...series.files, mr.files[0]], 'kidney-boundary-1'))
  const { stdout } = await run('curl', ['-sS', '-X', 'POST', `${http}/studies`,
    '-H', 'Content-Type: multipart/related; type="application/dicom"; boundary=kidney-boundary-1',
    '-H', 'Accept: application/dicom+json', '--data-binary', `@${body}`, '-w', '\n%{http_code} %{content_type}'])
  const [json, status] = stdout.split('\n')
  t.match(status, /^202 application\/dicom\+json/)
  const answer = JSON.parse(json)
  t.same(answer['00081199'].Value.map((item: any) => item[SOP_INSTANCE].Value[0]).sort(), [...series.sopInstanceUids].sort())
  t.same(answer['00081198'].Value.map((item: any) => [item[SOP_INSTANCE].Value[0], item[FAILURE_REASON].Value[0]]), [[mr.sopInstanceUids[0], 0x0122]])
  const metrics = await (await fetch(`${http}/metrics`)).text()
  // An HTTP caller has no calling AE title: STOW-RS instances count under calling_ae="none".
  t.match(metrics, 'kidney_dicom_instances_total{route="/studies",outcome="stored",calling_ae="none"} 4')
  t.match(metrics, 'kidney_dicom_instances_total{route="/studies",outcome="UNSUPPORTED_SOP_CLASS",calling_ae="none"} 1')

  let study: any
  for (let attempt = 0; attempt < 100 && study?.series?.length !== 2; attempt++) {
    study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const ct = study.series.find((s: any) => s.seriesInstanceUid === series.seriesInstanceUid)
  t.same(ct.instances, { received: 4, classified: 4, failed: 0 })
  t.same(ct.slices.map((s: any) => s.sopInstanceUid), series.sopInstanceUids)
  t.same(study.series.find((s: any) => s.seriesInstanceUid === mr.seriesInstanceUid).failures.map((f: any) => f.code), ['UNSUPPORTED_SOP_CLASS'])
})

t.test('an instance whose Rescale Slope is 0, and one with no Rescale Intercept, are failed SOPs (C000, CORRUPT_DICOM), counted as failed in their series', async (t) => {
  const series = await writeCtSeries(join(work, 'slope'), { slices: 2 })
  const broken = await writeCtSeries(join(work, 'slope-0'), { slices: 2, studyInstanceUid: series.studyInstanceUid })
  await run('dcmodify', ['-nb', '-i', '(0028,1053)=0', broken.files[0]])
  // On the old code the slice without its intercept was stored and classified (intercept read as 0).
  await run('dcmodify', ['-nb', '-e', '(0028,1052)', broken.files[1]])
  const res = await app.inject({ method: 'POST', url: '/studies', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=slope' }, payload: await relatedBody([...series.files, ...broken.files], 'slope') })
  t.equal(res.statusCode, 202, res.body.slice(0, 300))
  t.same(res.json()['00081198'].Value.map((item: any) => [item[SOP_INSTANCE].Value[0], item[FAILURE_REASON].Value[0]]), broken.sopInstanceUids.map((uid) => [uid, 0xc000]))
  let study: any
  for (let attempt = 0; attempt < 100 && study?.series?.length !== 2; attempt++) {
    study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.same(study.series.find((s: any) => s.seriesInstanceUid === broken.seriesInstanceUid).failures.map((f: any) => f.code), ['CORRUPT_DICOM', 'CORRUPT_DICOM'])
})

t.test('dicomweb-client storeInstances: 200 with every instance referenced', async (t) => {
  ;(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = require('xhr2')
  t.teardown(() => { delete (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest })
  const { api } = require('dicomweb-client')
  const client = new api.DICOMwebClient({ url: http })
  const series = await writeCtSeries(join(work, 'client'), { slices: 3 })
  const datasets = await Promise.all(series.files.map(async (file) => {
    const bytes = await readFile(file)
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  }))
  const response = await client.storeInstances({ datasets })
  const answer = typeof response === 'string' ? JSON.parse(response) : response
  t.same(answer['00081199'].Value.map((item: any) => item[SOP_INSTANCE].Value[0]).sort(), [...series.sopInstanceUids].sort())
  t.notOk(answer['00081198'])
  const study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
  t.same(study.series[0].instances, { received: 3, classified: 3, failed: 0 })
})

t.test('dicomweb-client storeInstances to one study (POST /studies/{uid}): its instances stored, one of another study refused C000 STUDY_MISMATCH', async (t) => {
  ;(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = require('xhr2')
  t.teardown(() => { delete (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest })
  const { api } = require('dicomweb-client')
  const client = new api.DICOMwebClient({ url: http })
  const series = await writeCtSeries(join(work, 'to-study'), { slices: 2 })
  const stranger = await writeCtSeries(join(work, 'to-study-other'), { slices: 1 })
  const datasets = await Promise.all([...series.files, ...stranger.files].map(async (file) => {
    const bytes = await readFile(file)
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  }))
  // On the old code no route answered POST /studies/{uid} (404 NOT_FOUND): the client's request failed.
  const response = await client.storeInstances({ datasets, studyInstanceUID: series.studyInstanceUid })
  const answer = typeof response === 'string' ? JSON.parse(response) : response
  t.same(answer['00081199'].Value.map((item: any) => item[SOP_INSTANCE].Value[0]).sort(), [...series.sopInstanceUids].sort())
  t.same(answer['00081198'].Value.map((item: any) => [item[SOP_INSTANCE].Value[0], item[FAILURE_REASON].Value[0]]), [[stranger.sopInstanceUids[0], 0xc000]])
  const study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
  t.same(study.series[0].instances, { received: 2, classified: 2, failed: 0 })
  // Refused as any instance is: counted, and recorded under its own study (on the merged code neither, the study 404).
  let other: any
  for (let attempt = 0; attempt < 100 && other?.series === undefined; attempt++) {
    const res = await fetch(`${http}/studies/${stranger.studyInstanceUid}`)
    if (res.status === 200) other = await res.json()
    else await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.same(other?.series?.[0]?.instances, { received: 1, classified: 0, failed: 1 }, 'the other study\'s instance was not stored')
  t.same(other?.series?.[0]?.failures?.map((f: any) => f.code), ['STUDY_MISMATCH'])
  t.match(await (await fetch(`${http}/metrics`)).text(), /kidney_dicom_instances_total\{route="\/studies",outcome="STUDY_MISMATCH",calling_ae="none"\} 1/)
})

t.test('to one study, a CT slice without a StudyInstanceUID is classified, then refused STUDY_MISMATCH and withdrawn: nothing of it kept', async (t) => {
  const series = await writeCtSeries(join(work, 'to-study-no-uid'), { slices: 2 })
  await run('dcmodify', ['-nb', '-e', '(0020,000D)', series.files[1]])
  const res = await app.inject({ method: 'POST', url: `/studies/${series.studyInstanceUid}`, payload: await relatedBody(series.files, 'n'),
    headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=n' } })
  // On the code before: 200, both stored, the second recorded under no study through a request naming this one.
  t.equal(res.statusCode, 202, res.body.slice(0, 300))
  t.same(res.json()['00081198'].Value.map((item: any) => [item[SOP_INSTANCE].Value[0], item[FAILURE_REASON].Value[0]]), [[series.sopInstanceUids[1], 0xc000]])
  const listed = (await app.inject({ url: `/predictions?limit=200` })).json().items.map((item: any) => item.dicom?.sopInstanceUid)
  t.ok(listed.includes(series.sopInstanceUids[0]), 'the slice of the study recorded')
  t.notOk(listed.includes(series.sopInstanceUids[1]), 'the other one\'s record withdrawn')
})

t.test('to one study, a part whose study cannot be read is refused for what is wrong with it, not as of another study', async (t) => {
  const series = await writeCtSeries(join(work, 'to-study-garbage'), { slices: 1 })
  const payload = Buffer.concat([await relatedBody(series.files, 'g').then((body) => body.subarray(0, body.length - '--g--\r\n'.length)),
    Buffer.from('--g\r\nContent-Type: application/dicom\r\n\r\nnot a DICOM file at all\r\n--g--\r\n')])
  /** kidney_dicom_instances_total of STOW-RS, by outcome. */
  const outcomes = async (): Promise<Record<string, number>> => Object.fromEntries([...(await (await fetch(`${http}/metrics`)).text())
    .matchAll(/^kidney_dicom_instances_total\{route="\/studies",outcome="([A-Z_a-z]+)",calling_ae="none"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]))
  const before = await outcomes()
  const res = await app.inject({ method: 'POST', url: `/studies/${series.studyInstanceUid}`, payload, headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=g' } })
  t.equal(res.statusCode, 202, res.body.slice(0, 300))
  t.equal(res.json()['00081198'].Value[0][FAILURE_REASON].Value[0], 0xc000)
  const after = await outcomes()
  const grown = Object.keys(after).filter((outcome) => after[outcome] !== (before[outcome] ?? 0))
  // On the merged code the part was answered STUDY_MISMATCH ('of no study that could be read') and counted nowhere.
  t.same(grown.sort(), ['UNSUPPORTED_MEDIA_TYPE', 'stored'], 'the stored slice, and the part refused as what it is')
})

t.test('a part written without the preamble (bare data set, or File Meta group first) is stored under its own UIDs, as /predict reads it', async (t) => {
  const part10 = await pydicomFile('CT_small.dcm')
  const forms = {
    'bare data set (dcmconv -F)': await transcoded(await scratchDir(t), part10, 'dcmconv', ['-F', '+ti']),
    'File Meta group without the preamble': part10.subarray(132)
  }
  const [sopClass, sopInstance, studyUid] = ['1.2.840.10008.5.1.4.1.1.2', '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322']
  for (const [form, bytes] of Object.entries(forms)) {
    t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(bytes, 'slice.dcm', 'application/dicom') })).statusCode, 200, `${form}: /predict classifies it`)
    const payload = Buffer.concat([Buffer.from('--a\r\nContent-Type: application/dicom\r\n\r\n'), bytes, Buffer.from('\r\n--a--\r\n')])
    // On the old code the instance keys were read from Part 10 files only: POST /studies stored it as 200 with a
    // ReferencedSOPSequence item of empty UIDs, and POST /studies/{uid} refused it C000 (STUDY_MISMATCH), 409.
    const response = await app.inject({ method: 'POST', url: `/studies/${studyUid}`, payload, headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=a' } })
    t.equal(response.statusCode, 200, form)
    t.same(response.json()['00081199']?.Value, [{ '00081150': { vr: 'UI', Value: [sopClass] }, '00081155': { vr: 'UI', Value: [sopInstance] }, '00081190': { vr: 'UR' } }], form)
  }
})

t.test('Retrieve URL (0008,1190), Type 2 in PS3.18 Table I.1-1, is present and empty at the top and in each stored item, never in a failed one', async (t) => {
  const series = await writeCtSeries(join(work, 'retrieve-url'), { slices: 1 })
  const mr = await writeCtSeries(join(work, 'retrieve-url-mr'), { slices: 1, attributes: { SOPClassUID: SOP_CLASS.mr, Modality: 'MR' } })
  const response = await app.inject({
    method: 'POST', url: '/studies', payload: await relatedBody([series.files[0], mr.files[0]], 'a'), headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=a' }
  })
  t.equal(response.statusCode, 202)
  const answer = response.json()
  // On the old code the answer had no 00081190 anywhere.
  t.same(answer['00081190'], { vr: 'UR' }, 'the study\'s, empty: this service offers no retrieve')
  t.same(answer['00081199'].Value[0]['00081190'], { vr: 'UR' }, 'the stored instance\'s')
  t.notOk('00081190' in answer['00081198'].Value[0], 'a failed instance has none (PS3.18 lists it for stored instances only)')
})

t.test('an instance in a transfer syntax no decoder here reads is a failed SOP with FailureReason C122, as PS3.18 Table I.2-2 names it', async (t) => {
  // dcmtk's JPEG Extended (process 2/4, 1.2.840.10008.1.2.4.51) of a real CT slice: /predict refuses it 415 UNSUPPORTED_TRANSFER_SYNTAX.
  const extended = await transcoded(await scratchDir(t), await pydicomFile('CT_small.dcm'), 'dcmcjpeg', ['+ee'])
  t.equal((await app.inject({ method: 'POST', url: '/predict', ...fileUpload(extended, 'slice.dcm', 'application/dicom') })).json().code, 'UNSUPPORTED_TRANSFER_SYNTAX')
  const payload = Buffer.concat([Buffer.from('--a\r\nContent-Type: application/dicom\r\n\r\n'), extended, Buffer.from('\r\n--a--\r\n')])
  const response = await app.inject({ method: 'POST', url: '/studies', payload, headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=a' } })
  t.equal(response.statusCode, 409)
  // On the old code 49152 (C000, "cannot understand"), which says nothing of the syntax the sender could change.
  t.same(response.json()['00081198'].Value.map((item: any) => item[FAILURE_REASON].Value[0]), [0xc122])
})

t.test('only multipart/related of application/dicom: other types are 415; a body without its closing boundary is 400', async (t) => {
  const json = await fetch(`${http}/studies`, { method: 'POST', headers: { 'content-type': 'multipart/related; type="application/dicom+json"; boundary=x' }, body: '--x\r\n\r\n{}\r\n--x--' })
  t.equal(json.status, 415)
  t.equal((await json.json()).code, 'UNSUPPORTED_MEDIA_TYPE')
  const truncated = await fetch(`${http}/studies`, { method: 'POST', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' }, body: '--x\r\nContent-Type: application/dicom\r\n\r\nDICM' })
  t.equal(truncated.status, 400)
  t.equal((await truncated.json()).code, 'MALFORMED_MULTIPART')
  const none = await fetch(`${http}/studies`, { method: 'POST', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' }, body: '--x\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--x--' })
  t.equal(none.status, 409, 'nothing stored')
  // Its UIDs could not be read: the attributes are there without a Value (on the old code: Value [""]).
  t.same((await none.json())['00081198'].Value, [{ '00081150': { vr: 'UI' }, [SOP_INSTANCE]: { vr: 'UI' }, [FAILURE_REASON]: { vr: 'US', Value: [0xc000] } }])
})

t.test('a part typed application/octet-stream is 415 naming the part and the type to send (PS3.18: instances are application/dicom parts); nothing is stored', async (t) => {
  const series = await writeCtSeries(join(work, 'octet'), { slices: 2 })
  const [dicom, octet] = await Promise.all(series.files.map(async (file) => await readFile(file)))
  const payload = Buffer.concat([
    Buffer.from('--o\r\nContent-Type: application/dicom\r\n\r\n'), dicom, Buffer.from('\r\n'),
    Buffer.from('--o\r\nContent-Type: application/octet-stream\r\n\r\n'), octet, Buffer.from('\r\n--o--\r\n')
  ])
  const res = await app.inject({ method: 'POST', url: '/studies', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=o' }, payload })
  // On the old code: 202, the octet-stream part in FailedSOPSequence with 49152 and no UIDs, and no word of why.
  t.equal(res.statusCode, 415, res.body.slice(0, 300))
  t.match(res.json(), { code: 'UNSUPPORTED_MEDIA_TYPE', message: /part 2 is of type application\/octet-stream; send each file as a part with Content-Type: application\/dicom/ })
  t.equal((await fetch(`${http}/studies/${series.studyInstanceUid}`)).status, 404, 'no part was classified')
  const untyped = await app.inject({ method: 'POST', url: '/studies', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=o' }, payload: Buffer.concat([Buffer.from('--o\r\n\r\n'), dicom, Buffer.from('\r\n--o--\r\n')]) })
  t.equal(untyped.statusCode, 200, 'a part without a Content-Type is read as DICOM')
})

t.test('a request of more parts than STOW_MAX_INSTANCES is refused as a whole, before any part is read', async (t) => {
  const app = await recordsApp(t, RECORDS_OFF, { stowMaxInstances: 3 })
  const body = (parts: number): string => '--x\r\nContent-Type: application/dicom\r\n\r\nX\r\n'.repeat(parts) + '--x--\r\n'
  const send = async (parts: number): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'POST', url: '/studies', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' }, payload: body(parts) })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const atLimit = await send(3)
  t.equal(atLimit.statusCode, 409, 'three parts are read (and refused one by one: none is DICOM)')
  t.equal(atLimit.body['00081198'].Value.length, 3)
  const over = await send(4)
  t.match(over, { statusCode: 400, body: { code: 'TOO_MANY_FILES', message: /at most 3 instances in one request \(STOW_MAX_INSTANCES\)/ } })
  const flood = await send(200_000)
  t.equal(flood.body.code, 'TOO_MANY_FILES', 'a flood of 200,000 one-byte parts is one refusal, not 200,000')
})


t.test('a part repeating an earlier part\'s SOP Instance UID: the same bytes share its answer, other bytes are refused', async (t) => {
  // Slice 1 from CT1 (a chest slice, Normal), slice 2 a ct-kidney stone slice made DICOM (Stone), then slice 2 given
  // slice 1's UID.
  const stoneSlice = join(work, 'duplicate-stone.dcm')
  await writeFile(stoneSlice, await ctSliceFromImage(await ctKidneyImage('test/stone', 0)))
  const series = await writeCtSeries(join(work, 'duplicate'), { slices: 2, source: (i) => i === 0 ? CT_SOURCES.ct1 : stoneSlice })
  const [first, other] = series.files
  const sop = series.sopInstanceUids[0]
  await run('dcmodify', ['-nb', '-i', `SOPInstanceUID=${sop}`, '-i', 'InstanceNumber=1', other])
  const store = async (files: string[]): Promise<{ statusCode: number, body: Record<string, any> }> => {
    const res = await app.inject({ method: 'POST', url: '/studies', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=d' }, payload: await relatedBody(files, 'd') })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const records = async (): Promise<any[]> => (await app.inject({ url: `/predictions?studyInstanceUid=${series.studyInstanceUid}` })).json().items

  // On the old code: 200, both classified and recorded in one group write at the same millisecond, and the study
  // showed one or the other by the order of their random ids (on model 2.4.0, CT_small's 0.41 in 5 of 6 tries by hand).
  const changed = await store([first, other])
  t.equal(changed.statusCode, 202)
  t.same(changed.body['00081199'].Value.map((item: any) => item[SOP_INSTANCE].Value[0]), [sop])
  t.same(changed.body['00081198'].Value.map((item: any) => [item[SOP_INSTANCE].Value[0], item[FAILURE_REASON].Value[0]]), [[sop, 0xc000]])
  const recorded = await records()
  t.equal(recorded.length, 1, 'one record: the first part\'s')
  const alone = recorded[0].probabilities.Stone
  const study = (await app.inject({ url: `/studies/${series.studyInstanceUid}` })).json()
  t.same(study.series[0].instances, { received: 1, classified: 1, failed: 0 })
  t.equal(study.series[0].slices[0].probability, alone)
  t.ok(alone < study.series[0].rule.threshold, 'CT1\'s slice (Normal), not the stone slice\'s')

  // The same bytes twice (a sender repeating a part): stored, classified and recorded once. On the old code: two records.
  const repeated = await store([other, other])
  t.equal(repeated.statusCode, 200)
  t.same(repeated.body['00081199'].Value.map((item: any) => item[SOP_INSTANCE].Value[0]), [sop, sop])
  t.equal((await records()).length, 2, 'one record more')
})

t.test('an Accept of the XML form alone is 406 before any instance is stored; DICOM JSON, JSON or any type is answered', async (t) => {
  const series = await writeCtSeries(join(work, 'accept'), { slices: 1 })
  const payload = await relatedBody(series.files, 'a')
  const send = async (accept: string): Promise<{ statusCode: number, headers: Record<string, unknown>, body: string }> => await app.inject({
    method: 'POST', url: `/studies/${series.studyInstanceUid}`, payload, headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=a', accept }
  })
  const xml = await send('application/dicom+xml')
  // On the old code: 200 in DICOM JSON, the instance stored, to a client that reads XML and would send it again.
  t.equal(xml.statusCode, 406, xml.body.slice(0, 200))
  t.match(JSON.parse(xml.body), { code: 'NOT_ACCEPTABLE', message: /application\/dicom\+json or application\/json only/ })
  t.equal((await fetch(`${http}/studies/${series.studyInstanceUid}`)).status, 404, 'nothing was stored')
  for (const accept of ['application/dicom+json', 'application/json', 'application/dicom+xml;q=0.9, application/dicom+json', '*/*']) {
    const res = await send(accept)
    t.equal(res.statusCode, 200, accept)
    t.match(res.headers['content-type'], /^application\/dicom\+json/, accept)
  }
})
