import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { CT_SOURCES, SOP_CLASS, writeCtSeries } from '../bench/ct-series.js'
import { ASSOCIATION_REFUSALS } from '../dicom-node/events.js'
import { loadConfig } from '../plugins/app/config.js'
import { build } from './helper.js'
import { associatedPeer, associateRequest, commandSet, dcmtk, dimseResponses, pDataPdu, rawPeer } from './helpers/dcmtk-clients.js'

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

/** The first byte a new connection gets back after a PDU header of `type` announcing `announced` bytes, and `sent` of them. */
async function answerTo (app: FastifyInstance, type: number, announced: number, sent: number): Promise<number> {
  const peer = await rawPeer(app.dicomPort() as number)
  const pdu = Buffer.alloc(6 + sent)
  pdu[0] = type
  pdu.writeUInt32BE(announced, 2)
  peer.socket.write(pdu)
  await peer.closed
  return peer.received()[0]
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

t.test('with the DICOM node off, DICOM_ALLOWED_AES makes no calling_ae series (it is not judged as AE titles then either)', async (t) => {
  const app = await build(t, { config: { dicomNode: { ...loadConfig({}).dicomNode, port: undefined, allowedAes: ['STALE-PACS'] } } })
  const refused = await samples(app, REFUSED, 'all')
  t.ok(Object.keys(refused).length > 0, 'the refusal series are exported')
  t.same(Object.keys(refused).filter((labels) => labels.includes('STALE-PACS')), [], 'none for the stale title (one per reason on the old code)')
})

t.test('an association aborted for a protocol error counts once, however many more bytes its peer sends before the close', async (t) => {
  const app = await nodeApp(t, [])
  // A PDU header announcing 2 GiB, over any bound, then 1 MiB of it: on the old code each chunk read after the A-ABORT
  // found the same bad header again, and was counted and logged as another protocol error.
  t.equal(await answerTo(app, 0x01, 0x7fffffff, 1024 * 1024), 0x07, 'an A-ABORT')
  t.same(await samples(app, REFUSED), { '{calling_ae="none",reason="protocol_error"}': 1 })
})

t.test('an A-ABORT with more bytes behind it in the same write closes the association and counts no protocol error', async (t) => {
  const app = await nodeApp(t, [])
  const peer = await associatedPeer(app.dicomPort() as number, 'KIDNEYSTONE', 'PACS1')
  t.equal(peer.answer, 0x02, 'associated')
  // A-ABORT (PS3.8 9.3.8), then a C-ECHO-RQ the peer had already queued: on the old code the close left the byte count
  // behind, the next read of the buffer threw, and a protocol error was counted and logged for a clean abort.
  const aAbort = Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])
  peer.socket.write(Buffer.concat([aAbort, pDataPdu(commandSet(0x0030, 2), { command: true, last: true })]))
  await peer.closed
  t.same(await samples(app, REFUSED), {}, 'nothing refused')
})

t.test('before an association, a PDU other than an A-ASSOCIATE-RQ is refused at its header, not read whole first', async (t) => {
  const app = await nodeApp(t, [])
  // The header of a P-DATA-TF of 1 MiB and nothing more: on the old code the node waited for the whole PDU, up to 1 MiB
  // held, and aborted the connection only when it went idle (1 s here), counted as such.
  t.equal(await answerTo(app, 0x04, 1024 * 1024, 0), 0x07, 'an A-ABORT')
  t.same(await samples(app, REFUSED), { '{calling_ae="none",reason="protocol_error"}': 1 })
})

t.test('the protocol version is judged by its bit 0 alone (PS3.8 9.3.2): 0x0003 is accepted, 0x0002 rejected', async (t) => {
  const app = await nodeApp(t, [])
  const answer = async (version: number): Promise<number> => {
    const peer = await rawPeer(app.dicomPort() as number)
    const request = associateRequest('KIDNEYSTONE', 'ECHOSCU')
    request.writeUInt16BE(version, 6)
    peer.socket.write(request)
    for (let attempt = 0; attempt < 100 && peer.received().length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
    peer.socket.destroy()
    return peer.received()[0]
  }
  t.equal(await answer(0x0003), 0x02, 'version 1 and a later one offered: A-ASSOCIATE-AC (A-ASSOCIATE-RJ on the old code)')
  t.equal(await answer(0x0002), 0x03, 'a later version only: A-ASSOCIATE-RJ')
  t.same(await samples(app, REFUSED), { '{calling_ae="unlisted",reason="protocol_version"}': 1 })
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

t.test('contexts refused at association: findscu, getscu and movescu, and storescu proposing MPEG-2, are counted by reason and logged', async (t) => {
  const events: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { events.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, allowedAes: ['PACS1'], minRateBytesPerS: 0 } } })
  const peer = ['-aec', 'KIDNEYSTONE', '-aet', 'PACS1', '127.0.0.1', String(app.dicomPort())]
  const query = [...peer, '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.3']
  const ct = await writeCtSeries(join(work, 'contexts'), { slices: 1 })
  type Rejected = Array<{ abstractSyntax: string, transferSyntaxes: string[], reason: string }>
  /** The contexts the node logged as rejected while `tool` ran. */
  const rejectedBy = async (tool: Parameters<typeof dcmtk>[0], args: string[], says: RegExp): Promise<Rejected> => {
    const from = events.length
    const run = await dcmtk(tool, args)
    t.match(run.output, says, `${tool} ${args[0]}`)
    return events.slice(from).filter((e) => e.event === 'contexts-rejected' && e.callingAe === 'PACS1').flatMap((e) => e.rejectedContexts as Rejected)
  }
  const find = await rejectedBy('findscu', ['-S', ...query], /No Acceptable Presentation Contexts/)
  t.match(find, [{ abstractSyntax: '1.2.840.10008.5.1.4.1.2.2.1', reason: 'abstract_syntax_not_supported' }], 'findscu: Study Root FIND')
  const get = await rejectedBy('getscu', ['-S', '-od', work, ...query], /No adequate Presentation Contexts for sending C-GET/)
  t.ok(get.some((c) => c.abstractSyntax === '1.2.840.10008.5.1.4.1.2.2.3' && c.reason === 'abstract_syntax_not_supported'), 'getscu: Study Root GET among them')
  const move = await rejectedBy('movescu', ['-S', ...query], /No Acceptable Presentation Contexts/)
  t.ok(move.some((c) => c.abstractSyntax === '1.2.840.10008.5.1.4.1.2.2.2'), 'movescu: Study Root MOVE among them')
  const mpeg = await rejectedBy('storescu', ['-xm', '-R', ...peer, ct.files[0]], /No Acceptable Presentation Contexts/)
  t.same(mpeg, [{ id: 1, abstractSyntax: SOP_CLASS.ct, transferSyntaxes: ['1.2.840.10008.1.2.4.100'], reason: 'transfer_syntaxes_not_supported' }], 'storescu: CT in MPEG-2 only')
  t.same(await rejectedBy('storescu', ['-v', '-R', ...peer, ct.files[0]], /Received Store Response \(Success\)/), [], 'control: storescu in its default syntaxes, nothing rejected')
  const queries = [...find, ...get, ...move].length
  t.same(await samples(app, 'kidney_dicom_contexts_rejected_total'), {
    '{calling_ae="PACS1",reason="abstract_syntax_not_supported"}': queries,
    '{calling_ae="PACS1",reason="transfer_syntaxes_not_supported"}': 1
  }, `every rejected context counted (${queries} of the query tools); no such metric, and no log line, on the old code`)
})

// Raw peers, not dcmtk: findscu, getscu and movescu propose their query/retrieve SOP classes, which the node rejects at
// association, so they never send their command ("No Acceptable Presentation Contexts", "No adequate Presentation
// Contexts for sending C-GET"), and storescu sends only on a context the node accepted ("No presentation context for").
t.test('a request on a context not accepted and a command the node does not perform are answered, counted by command and logged', async (t) => {
  const events: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { events.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, allowedAes: ['PACS1'], minRateBytesPerS: 0 } } })
  const peer = await associatedPeer(app.dicomPort() as number, 'KIDNEYSTONE', 'PACS1') // context 1: Verification, accepted
  t.equal(peer.answer, 0x02, 'associated (A-ASSOCIATE-AC)')
  const identifier = Buffer.from([0x08, 0x00, 0x52, 0x00, 0x06, 0, 0, 0, ...Buffer.from('STUDY ')]) // QueryRetrieveLevel
  peer.socket.write(Buffer.concat([
    pDataPdu(commandSet(0x0001, 1), { command: true, last: true, context: 3 }), // C-STORE on a context never proposed
    pDataPdu(Buffer.alloc(16), { command: false, last: true, context: 3 }),
    pDataPdu(commandSet(0x0020, 2, { sopClassUid: '1.2.840.10008.5.1.4.1.2.2.1' }), { command: true, last: true }), // C-FIND
    pDataPdu(identifier, { command: false, last: true }),
    pDataPdu(commandSet(0x0130, 3, { dataSet: false }), { command: true, last: true }), // N-ACTION
    pDataPdu(commandSet(0x0030, 4), { command: true, last: true }) // C-ECHO: performed, not counted
  ]))
  for (let attempt = 0; attempt < 500 && dimseResponses(peer.received()).length < 4; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(dimseResponses(peer.received()), [
    { field: 0x8001, status: 0x0110 }, { field: 0x8020, status: 0x0211 }, { field: 0x8130, status: 0x0211 }, { field: 0x8030, status: 0x0000 }
  ], 'processing failure, unrecognized operation twice, then the echo answered')
  peer.socket.destroy()
  t.same(await samples(app, 'kidney_dicom_commands_refused_total'), {
    '{calling_ae="PACS1",command="C-STORE",reason="context_not_accepted"}': 1,
    '{calling_ae="PACS1",command="C-FIND",reason="unrecognized_operation"}': 1,
    '{calling_ae="PACS1",command="N-ACTION",reason="unrecognized_operation"}': 1
  }, 'no such metric on the old code')
  t.match(events.filter((e) => e.event === 'command-refused'), [
    { msg: 'DICOM node: command-refused', callingAe: 'PACS1', command: 'C-STORE', field: '0x0001', context: 3, refusedCommand: 'context_not_accepted' },
    { callingAe: 'PACS1', command: 'C-FIND', context: 1, refusedCommand: 'unrecognized_operation', sopClassUid: '1.2.840.10008.5.1.4.1.2.2.1' },
    { callingAe: 'PACS1', command: 'N-ACTION', context: 1, refusedCommand: 'unrecognized_operation' }
  ], 'one log line each, none on the old code')
  t.equal(events.filter((e) => e.event === 'command-refused').length, 3, 'the echo is not one')
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
