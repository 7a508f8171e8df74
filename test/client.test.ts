import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { parseApiKeys } from '../plugins/app/auth-config.js'
import sharp from 'sharp'
import type { components } from '../client/api-types.js'
import { createKidneyStoneClient, multipartBody, predictionOverlay, predictSlice, predictSliceAsFhir, storedPredictionAsFhir, type AuditEvent, type AuditEventPage } from '../client/index.js'
import { build, ctKidneyImage, RECORDS_OFF, SHARED } from './helper.js'
import { hs256Token } from './helpers/jwt.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

const DICOM = join(SHARED, 'data/dicom/ct1-unc-explicit-little-endian.dcm')

/** Every operation openapi.yaml documents, as "METHOD /path". */
async function documentedOperations (): Promise<string[]> {
  const doc = parse(await readFile(new URL('../openapi.yaml', import.meta.url), 'utf8')) as { paths: Record<string, Record<string, unknown>> }
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)).sort()
}

t.test('client/api-types.ts is what openapi-typescript generates from openapi.yaml (run `npm run client:types`)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-client-types-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const generator = fileURLToPath(new URL('../node_modules/openapi-typescript/bin/cli.js', import.meta.url))
  const openapi = fileURLToPath(new URL('../openapi.yaml', import.meta.url))
  await promisify(execFile)(process.execPath, [generator, openapi, '-o', join(dir, 'api-types.ts')])
  t.equal(await readFile(join(dir, 'api-types.ts'), 'utf8'), await readFile(new URL('../client/api-types.ts', import.meta.url), 'utf8'))
})

t.test('the generated client calls every documented route of the real server over HTTP', async (t) => {
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-client-records-')))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  // records on, in the default embedded store: the records routes are part of the contract
  const app = await build(t, { config: { records: { ...RECORDS_OFF, store: 'pglite', dataDir } } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const client = createKidneyStoneClient(`http://127.0.0.1:${port}`)
  const called: string[] = []
  const seen = <T extends { response: Response }>(operation: string, result: T): T => { called.push(operation); return result }

  const status = seen('GET /', await client.GET('/'))
  t.equal(status.response.status, 200)
  t.equal(status.data?.status, 'ready')
  t.equal(seen('GET /health/live', await client.GET('/health/live')).response.status, 200)
  t.same(seen('GET /health/ready', await client.GET('/health/ready')).data, { status: 'ready' })
  const model = seen('GET /model', await client.GET('/model'))
  t.equal(model.data?.name, app.model.get().spec.name)

  const dicom = await readFile(DICOM)
  const predicted = seen('POST /predict', await predictSlice(client, { name: 'slice.dcm', bytes: dicom }))
  t.equal(predicted.response.status, 200)
  t.ok(['Normal', 'Stone'].includes(predicted.data?.prediction ?? ''))
  t.equal(predicted.data?.dicom?.sopInstanceUid, '1.3.6.1.4.1.5962.1.1.1.1.1.20040826185059.5457')

  const fhir = await predictSliceAsFhir(client, { name: 'slice.dcm', bytes: dicom })
  t.match(fhir.response.headers.get('content-type'), /^application\/fhir\+json/)
  t.equal(fhir.data?.resourceType, 'DiagnosticReport')
  t.match(fhir.data?.id, /^[0-9a-f-]{36}$/, 'the report id is the stored upload id')

  const refused = await predictSlice(client, { name: 'notes.txt', bytes: new TextEncoder().encode('hello') })
  t.equal(refused.response.status, 415)
  t.equal(refused.error?.code, 'UNSUPPORTED_MEDIA_TYPE', 'typed errors come back as the Error schema')

  const image = await ctKidneyImage('test/stone')
  const batch = seen('POST /predict/batch', await client.POST('/predict/batch', multipartBody('files', [
    { name: 'a.dcm', bytes: dicom }, { name: 'b.jpg', bytes: image }
  ])))
  t.equal(batch.response.status, 200)
  t.same(batch.data?.results.map((entry) => entry.index), [0, 1])
  t.equal(batch.data?.summary.succeeded, 2)

  const id = predicted.data?.id ?? ''
  const stored = seen('GET /predictions/{id}', await client.GET('/predictions/{id}', { params: { path: { id } } }))
  t.equal(stored.response.status, 200)
  t.same({ ...stored.data, createdAt: undefined, caller: undefined }, { ...predicted.data, createdAt: undefined, caller: undefined },
    'the recorded answer is the answer /predict gave')
  t.equal(stored.data?.caller, 'anonymous')
  const page = seen('GET /predictions', await client.GET('/predictions', { params: { query: { limit: 2 } } }))
  t.equal(page.data?.items.length, 2, 'newest first: the two batch results')
  t.ok(page.data?.next !== undefined, 'and a cursor to the older ones')
  const defaults = await client.GET('/predictions')
  t.equal(defaults.response.status, 200, 'limit may be left out (default 50)')
  t.ok((defaults.data?.items.length ?? 0) >= 3 && (defaults.data?.items.length ?? 0) <= 50)
  const older = await client.GET('/predictions', { params: { query: { limit: 2, cursor: page.data?.next } } })
  t.same(older.data?.items.map((item) => item.id).includes(id), true, 'the first /predict answer is on the next page')
  const stoneId = batch.data?.results[1].result?.id ?? ''
  t.ok((batch.data?.results[1].result?.findings?.length ?? 0) >= 1, 'the stone slice has findings')
  const overlay = seen('GET /predictions/{id}/overlay.png', await predictionOverlay(client, stoneId))
  t.equal(overlay.response.headers.get('content-type'), 'image/png')
  const overlaySize = await sharp(Buffer.from(await (overlay.data as Blob).arrayBuffer())).metadata()
  const imageSize = await sharp(image).metadata()
  t.same([overlaySize.width, overlaySize.height], [imageSize.width, imageSize.height], 'the overlay has the uploaded size')
  const storedReport = await storedPredictionAsFhir(client, stoneId)
  t.equal(storedReport.data?.resourceType, 'DiagnosticReport')
  t.equal(storedReport.data?.id, stoneId)
  const missing = await client.GET('/predictions/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } })
  t.equal(missing.error?.code, 'PREDICTION_NOT_FOUND')
  let audit = seen('GET /audit-events', await client.GET('/audit-events', { params: { query: { code: 'PREDICTION_NOT_FOUND', limit: 5 } } }))
  for (let attempt = 0; attempt < 100 && audit.data?.items.length === 0; attempt++) { // written just after the refusal is sent
    await new Promise((resolve) => setTimeout(resolve, 50))
    audit = await client.GET('/audit-events', { params: { query: { code: 'PREDICTION_NOT_FOUND', limit: 5 } } })
  }
  // the client exports the listing's types by name (docs/records.md), as it does StoredPrediction and PredictionPage
  const trail: AuditEventPage | undefined = audit.data
  const refusal: AuditEvent | undefined = trail?.items[0]
  t.match(refusal, { route: '/predictions/:id', status: 404, code: 'PREDICTION_NOT_FOUND', caller: 'anonymous' }, 'the refusal is in the audit trail')

  // STOW-RS takes a multipart/related body, which openapi-fetch sends as given
  const boundary = 'kidney-client-test-boundary'
  const stowBody = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), dicom, Buffer.from(`\r\n--${boundary}--\r\n`)])
  const stow = seen('POST /studies', await client.POST('/studies', {
    bodySerializer: () => stowBody,
    body: {} as never,
    headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` }
  }))
  t.equal(stow.response.status, 200, 'STOW-RS stored the instance')
  const studyInstanceUid = predicted.data?.dicom?.studyInstanceUid ?? ''
  const stowToStudy = seen('POST /studies/{studyInstanceUid}', await client.POST('/studies/{studyInstanceUid}', {
    params: { path: { studyInstanceUid } },
    bodySerializer: () => stowBody,
    body: {} as never,
    headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` }
  }))
  t.equal(stowToStudy.response.status, 200, 'STOW-RS to its study stored it too')
  const study = seen('GET /studies/{studyInstanceUid}', await client.GET('/studies/{studyInstanceUid}', { params: { path: { studyInstanceUid } } }))
  t.equal(study.response.status, 200)
  // the route answers JSON or FHIR by Accept, so its typed data is the union of both
  const result = study.data as components['schemas']['StudyResult'] | undefined
  t.equal(result?.series.length, 1, 'the one series of the uploaded instance')
  t.equal(result?.series[0].instances.classified, 1, 'the instance, sent by /predict, batch and STOW-RS, counts once')

  t.same(called.sort(), await documentedOperations(), 'every operation in openapi.yaml was called')
})

t.test('the CLI against the running server (--url) answers like the server', async (t) => {
  const app = await build(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const bin = fileURLToPath(new URL('../bin/kidney-stone.js', import.meta.url))
  const { stdout } = await promisify(execFile)(process.execPath, [bin, 'predict', DICOM, '--url', `http://127.0.0.1:${port}`])
  const [result] = JSON.parse(stdout)
  const inProcess = await app.predict(await readFile(DICOM), { caller: 'anonymous', route: 'test' })
  t.same(result.probabilities, inProcess.prediction.probabilities)
  t.match(result.id, /^[0-9a-f-]{36}$/, 'the server stored the upload and named it')
  t.equal(result.dicom.seriesInstanceUid, '1.3.6.1.4.1.5962.1.3.1.1.20040826185059.5457')
})

t.test('the client and the CLI send an API key or a bearer token when the service requires one', async (t) => {
  const secret = 'test-secret-of-at-least-32-characters!!'
  const app = await build(t, {
    config: {
      auth: {
        mode: 'any',
        apiKeyHeader: 'x-api-key',
        apiKeys: parseApiKeys('frontend:key-0123456789abcdef', 'test'),
        jwt: { algorithm: 'HS256', key: secret, issuer: 'https://issuer.test', audience: 'kidney-stone', clockToleranceS: 0 },
        docsPublic: true,
        metricsPublic: false
      }
    }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const file = { name: 'slice.dcm', bytes: await readFile(DICOM) }

  const anonymous = await predictSlice(createKidneyStoneClient(base), file)
  t.equal(anonymous.response.status, 401)
  t.equal(anonymous.error?.code, 'UNAUTHORIZED')
  const withKey = await predictSlice(createKidneyStoneClient(base, { apiKey: 'key-0123456789abcdef' }), file)
  t.equal(withKey.response.status, 200)
  const token = hs256Token(secret, { sub: 'ris', scope: 'predict', iss: 'https://issuer.test', aud: 'kidney-stone', exp: Math.floor(Date.now() / 1000) + 600 })
  const withToken = await predictSlice(createKidneyStoneClient(base, { token }), file)
  t.equal(withToken.response.status, 200)
  t.same(withToken.data?.probabilities, withKey.data?.probabilities)

  const bin = fileURLToPath(new URL('../bin/kidney-stone.js', import.meta.url))
  const cli = promisify(execFile)
  const ok = await cli(process.execPath, [bin, 'predict', DICOM, '--url', base, '--api-key', 'key-0123456789abcdef', '--format', 'csv'])
  t.match(ok.stdout.split('\n')[1], /,(Normal|Stone),/)
  const refused = await cli(process.execPath, [bin, 'predict', DICOM, '--url', base]).catch((error: { code: number, stdout: string }) => error)
  t.equal((refused as { code?: number }).code, 1, 'exit code 1 when the service refuses the file')
  t.equal(JSON.parse(refused.stdout)[0].error.code, 'UNAUTHORIZED')
})
