import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { CT_SOURCES, SOP_CLASS, writeCtSeries } from '../bench/ct-series.js'
import { ASSOCIATION_REFUSALS } from '../dicom-node/events.js'
import { loadConfig } from '../plugins/app/config.js'
import { build } from './helper.js'
import { associatedPeer, associateRequest, dcmtk, rawPeer } from './helpers/dcmtk-clients.js'

// The DICOM node's refusals in /metrics, by reason and calling AE, driven by dcmtk's echoscu and storescu (see
// test/dicom-node.test.ts) and by raw A-ASSOCIATE-RQs for the peers dcmtk will not be.

const REFUSED = 'kidney_dicom_associations_refused_total'

const work = await mkdtemp(join(tmpdir(), 'kidney-dicom-metrics-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

/** An app whose DICOM node listens on a free port; idle associations are aborted after 1 s, never for their rate. */
async function nodeApp (t: Test, allowedAes: string[], limits: { maxAssociations?: number, maxAssociationsPerAe?: number } = {}): Promise<FastifyInstance> {
  return await build(t, { config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, allowedAes, idleTimeoutMs: 1_000, minRateBytesPerS: 0, ...limits } } })
}

/** The samples of one metric family in a /metrics scrape: `{labels}` -> value; `counted`: without the series at 0. */
async function samples (app: FastifyInstance, name: string, which: 'all' | 'counted' = 'counted'): Promise<Record<string, number>> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  return Object.fromEntries(text.split('\n').filter((line) => line.startsWith(`${name}{`))
    .map((line) => [line.slice(name.length, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1))])
    .filter(([, value]) => which === 'all' || value !== 0))
}

t.test('a fresh app exports the refusal series of every listed AE at 0, so the first refusal after a start is an increase', async (t) => {
  const app = await nodeApp(t, ['PACS1', 'PACS2'])
  const refused = await samples(app, REFUSED, 'all')
  for (const callingAe of ['PACS1', 'PACS2', 'unlisted', 'none']) {
    for (const reason of ASSOCIATION_REFUSALS) {
      t.equal(refused[`{calling_ae="${callingAe}",reason="${reason}"}`], 0, `${callingAe} ${reason} at 0 (absent on the old code)`)
    }
  }
  t.equal(Object.keys(refused).length, 4 * ASSOCIATION_REFUSALS.length, 'no other calling_ae: bounded by DICOM_ALLOWED_AES')
  const instances = await samples(app, 'kidney_dicom_instances_total', 'all')
  for (const outcome of ['QUEUE_FULL', 'RECORDS_UNAVAILABLE', 'MODEL_NOT_READY', 'FILE_TOO_LARGE']) {
    t.equal(instances[`{route="DIMSE C-STORE",outcome="${outcome}",calling_ae="PACS1"}`], 0, `PACS1 ${outcome} at 0`)
  }
  t.same(await samples(app, REFUSED), {}, 'nothing counted yet')
})

t.test('the help of kidney_dicom_associations_refused_total names every reason of ASSOCIATION_REFUSALS and no other', async (t) => {
  const app = await nodeApp(t, [])
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const help = text.split('\n').find((line) => line.startsWith(`# HELP ${REFUSED} `)) ?? ''
  const named = help.slice(help.indexOf('reason:')).match(/\b[a-z]+(?:_[a-z]+)+\b/g) ?? []
  t.same([...named].sort(), [...ASSOCIATION_REFUSALS].sort(), help)
})

t.test('refused associations: an unlisted calling AE counts under "unlisted", a listed one under its title, by reason', async (t) => {
  const app = await nodeApp(t, ['PACS1'], { maxAssociations: 2, maxAssociationsPerAe: 1 })
  const port = String(app.dicomPort())
  const intruder = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '-aet', 'INTRUDER', '127.0.0.1', port])
  t.match(intruder.output, /Calling AE Title Not Recognized/)
  const misdirected = await dcmtk('echoscu', ['-aec', 'OTHERNODE', '-aet', 'PACS1', '127.0.0.1', port])
  t.match(misdirected.output, /Called AE Title Not Recognized/)
  // PACS1 holds its one association (DICOM_MAX_ASSOCIATIONS_PER_AE 1): a second is refused at once (a raw peer, well
  // inside the 1 s idle timeout), the first aborted once idle.
  const held = await associatedPeer(app.dicomPort() as number, 'KIDNEYSTONE', 'PACS1')
  t.equal(held.answer, 0x02, 'held open (A-ASSOCIATE-AC)')
  const second = await associatedPeer(app.dicomPort() as number, 'KIDNEYSTONE', 'PACS1')
  t.same([second.answer, second.received()[7]], [0x03, 2], 'the second rejected, transient (A-ASSOCIATE-RJ)')
  await held.closed
  t.equal(held.received().at(-10), 0x07, 'aborted when idle (A-ABORT)')

  t.same(await samples(app, REFUSED), {
    '{calling_ae="unlisted",reason="calling_ae_not_recognized"}': 1,
    '{calling_ae="PACS1",reason="called_ae_not_recognized"}': 1,
    '{calling_ae="PACS1",reason="limit_per_ae"}': 1,
    '{calling_ae="PACS1",reason="idle_timeout"}': 1
  }, 'no kidney_dicom_associations_refused_total on the old code')
})

t.test('refused instances: a listed AE\'s non-CT instance counts under its title, by the refusal\'s code', async (t) => {
  const app = await nodeApp(t, ['PACS1'])
  const ct = await writeCtSeries(join(work, 'ct'), { slices: 1 })
  const mr = await writeCtSeries(join(work, 'mr'), { slices: 1, studyInstanceUid: ct.studyInstanceUid, attributes: { SOPClassUID: SOP_CLASS.mr, Modality: 'MR' } })
  const pushed = await dcmtk('storescu', ['-v', '--no-halt', '-aec', 'KIDNEYSTONE', '-aet', 'PACS1', '127.0.0.1', String(app.dicomPort()), ct.files[0], mr.files[0]])
  t.match(pushed.output, /Received Store Response \(Refused: SOPClassNotSupported\)/)
  t.match(pushed.output, /Received Store Response \(Success\)/)
  t.same(await samples(app, 'kidney_dicom_instances_total'), {
    '{route="DIMSE C-STORE",outcome="stored",calling_ae="PACS1"}': 1,
    '{route="DIMSE C-STORE",outcome="UNSUPPORTED_SOP_CLASS",calling_ae="PACS1"}': 1
  }, 'without calling_ae on the old code')
})

t.test('an instance over MAX_FILE_BYTES, refused by the node before classification, counts as FILE_TOO_LARGE under its sender', async (t) => {
  const app = await build(t, { config: { maxFileBytes: 100 * 1024, dicomNode: { ...loadConfig({}).dicomNode, port: 0, allowedAes: ['PACS1'] } } })
  const small = await writeCtSeries(join(work, 'small'), { slices: 1, source: () => CT_SOURCES.small }) // 128x128, about 40 KiB
  const large = await writeCtSeries(join(work, 'large'), { slices: 1 }) // 512x512, about 518 KiB
  const pushed = await dcmtk('storescu', ['-v', '--no-halt', '-aec', 'KIDNEYSTONE', '-aet', 'PACS1', '127.0.0.1', String(app.dicomPort()), large.files[0], small.files[0]])
  t.match(pushed.output, /Received Store Response \(Error: CannotUnderstand\)/)
  t.match(pushed.output, /Received Store Response \(Success\)/)
  t.same(await samples(app, 'kidney_dicom_instances_total'), {
    '{route="DIMSE C-STORE",outcome="FILE_TOO_LARGE",calling_ae="PACS1"}': 1,
    '{route="DIMSE C-STORE",outcome="stored",calling_ae="PACS1"}': 1
  }, 'the refusal was not counted on the old code')
})

t.test('1,000 distinct calling AE titles add no series: with DICOM_ALLOWED_AES set, and with it empty (any title accepted)', async (t) => {
  const titles = Array.from({ length: 1000 }, (_, i) => `PEER${i}`)
  for (const [allowedAes, calledAe, reason] of [[['PACS1'], 'KIDNEYSTONE', 'calling_ae_not_recognized'], [[], 'OTHERNODE', 'called_ae_not_recognized']] as const) {
    const app = await nodeApp(t, [...allowedAes])
    const answers = new Set<number>()
    for (const title of titles) {
      const peer = await rawPeer(app.dicomPort() as number)
      peer.socket.write(associateRequest(calledAe, title))
      await peer.closed // the node closes the connection after its A-ASSOCIATE-RJ
      answers.add(peer.received()[0])
    }
    t.same([...answers], [0x03], 'each one rejected (A-ASSOCIATE-RJ)')
    t.same(await samples(app, REFUSED), { [`{calling_ae="unlisted",reason="${reason}"}`]: 1000 },
      `DICOM_ALLOWED_AES=${allowedAes.join(',')}: one series counts all 1,000`)
  }
})
