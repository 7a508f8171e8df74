import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { databaseInstant } from '../helpers/database-instant.js'
import { SHARED } from '../helper.js'
import { mountTmpfs } from '../helpers/tmpfs.js'
import { predictJson, recordsApp, type RecordsBackend } from './suite.js'

/**
 * The upload's write and the record's commit run side by side (plugins/app/predictor.ts): an upload that cannot be
 * kept must take its already committed record with it, since its answer is never given.
 */
export function uploadRefusedTests (t: Test, backend: RecordsBackend): void {
  t.test(`${backend.engine}: an upload that cannot be kept gets 503 UPLOADS_UNAVAILABLE and leaves no record of the answer not given`, async (t) => {
    // A real full file system: a 1 MiB tmpfs holds one 530 kB DICOM slice and part of a second.
    const disk = await mountTmpfs(t, '1m')
    const app = await recordsApp(t, await backend.records(), { uploadDir: disk.dir })
    const slice = await readFile(join(SHARED, 'data/dicom/ct1-unc-explicit-little-endian.dcm'))
    const since = new Date()
    const first = await predictJson(app, slice, 'slice.dcm')
    t.equal(first.statusCode, 200)
    const second = await predictJson(app, slice, 'slice.dcm')
    t.match(second, { statusCode: 503, body: { code: 'UPLOADS_UNAVAILABLE', message: /file system is full/ } })
    const recorded = await app.records.listPredictions({ since: databaseInstant(since), limit: 10 })
    t.same(recorded.items.map((item) => item.answer.id), [first.body.id], 'only the answer given is recorded')
    t.same(await readdir(disk.dir), [`${first.body.id as string}.dcm`], 'and only its upload is kept')
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
    t.match(metrics, /kidney_records_withdrawn_total\{result="ok"\} 1/, 'the refused answer\'s record was committed, then withdrawn')
  })
}
