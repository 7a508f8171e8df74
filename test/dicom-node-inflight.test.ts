import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { writeCtSeries } from '../bench/ct-series.js'
import { build } from './helper.js'
import { dcmtk } from './helpers/dcmtk-clients.js'

// The DICOM node's instances count in MAX_INFLIGHT_BYTES beside HTTP uploads (plugins/app/dicom-node.ts). The budget is
// filled here through its own accounts, as multipart uploads fill it, so that what storescu meets is a full service.
t.test('a C-STORE meeting a full in-flight budget is refused Out of Resources (A700), counted, and stored once the budget has room; nothing stays charged', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'kidney-dicom-inflight-'))
  t.teardown(async () => await rm(work, { recursive: true, force: true }))
  const app = await build(t, { config: { ...loadConfig(), dicomNode: { ...loadConfig().dicomNode, port: 0 } } })
  const series = await writeCtSeries(join(work, 'series'), { slices: 2 })
  const store = async (file: string): Promise<string> =>
    (await dcmtk('storescu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', 'PACS', '127.0.0.1', String(app.dicomPort()), file])).output

  const uploads = app.inflight.account()
  uploads.charge(app.inflight.available - 1024)
  const refused = await store(series.files[0])
  t.match(refused, /Received Store Response \(Refused: OutOfResources/, 'A700: the sender is to retry later')
  t.equal(app.inflight.used, app.inflight.limitBytes - 1024, 'the refused instance left nothing charged')
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /kidney_dicom_instances_total\{route="DIMSE C-STORE",outcome="INFLIGHT_BUDGET_FULL",calling_ae="unlisted"\} 1/, 'counted as refused for the budget')

  uploads.release()
  const stored = await store(series.files[1])
  t.match(stored, /Received Store Response \(Success\)/, 'with room, the next instance is classified')
  t.equal(app.inflight.used, 0, 'and what it charged is given back')
})
