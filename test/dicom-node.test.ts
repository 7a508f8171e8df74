import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { concludeSeries } from '../inference/series-conclusion.js'
import { RECORDS_OFF } from './helper.js'
import { CT_SOURCES, SOP_CLASS, writeCtSeries } from '../bench/ct-series.js'
import { associateRequest, commandSet, dcmtk, pDataPdu, rawPeer } from './helpers/dcmtk-clients.js'
import { dcmtk as dcmtkTool } from './helpers/dcmtk.js'
import { recordsApp } from './records/suite.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'

// The DICOM node driven by real DICOM clients nobody here wrote: dcmtk's echoscu and storescu (npm test's pretest
// installs Debian's dcmtk; without it these tests fail). Results are read back over HTTP, as a PACS integrator would.

const work = await mkdtemp(join(tmpdir(), 'kidney-dicom-node-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const ALLOWED = 'MODALITY1'
// DICOM_IDLE_TIMEOUT_S of 1 s, and DICOM_MIN_RATE_BYTES_S at its default (8 KiB/s, judged over each second here): the
// pushes below run under the same bound that aborts the slow peers.
const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data')) }, {
  dicomNode: { ...loadConfig().dicomNode, port: 0, allowedAes: [ALLOWED, 'ECHOSCU'], maxAssociations: 2, idleTimeoutMs: 1_000 },
  series: { idleSeconds: 2, minAdjacentSlices: 2 }
})
await app.listen({ port: 0, host: '127.0.0.1' })
const http = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
const port = String(app.dicomPort())
const store = async (files: string[], callingAe = ALLOWED): Promise<{ code: number, output: string }> =>
  await dcmtk('storescu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', callingAe, '127.0.0.1', port, ...files])

t.test('C-ECHO: echoscu gets Success', async (t) => {
  const echo = await dcmtk('echoscu', ['-v', '-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(echo.code, 0, echo.output)
  t.match(echo.output, /Received Echo Response \(Success\)/)
})

t.test('storescu pushes a 60-slice CT series; GET /studies/{uid} over HTTP shows 60 instances in slice order with a conclusion', async (t) => {
  // Slices 20-25 copy one real CT slice, the others another: the series has a region that differs from the rest.
  const series = await writeCtSeries(join(work, 'series'), { slices: 60, source: (i) => i >= 20 && i < 26 ? CT_SOURCES.ct1 : CT_SOURCES.small })
  const shuffled = [...series.files].sort((a, b) => (a.charCodeAt(a.length - 5) % 7) - (b.charCodeAt(b.length - 5) % 7))
  const pushed = await store(shuffled)
  t.equal(pushed.code, 0, pushed.output.slice(-2000))
  t.equal(pushed.output.match(/Received Store Response \(Success\)/g)?.length, 60)

  const res = await fetch(`${http}/studies/${series.studyInstanceUid}`)
  t.equal(res.status, 200)
  const study = await res.json()
  t.equal(study.series.length, 1)
  const [result] = study.series
  t.same(result.instances, { received: 60, classified: 60, failed: 0 })
  t.same(result.slices.map((s: any) => s.sopInstanceUid), series.sopInstanceUids, 'in slice order, whatever the sending order')
  t.same(result.slices.map((s: any) => s.slicePosition), series.positions)
  const expected = concludeSeries(result.slices, { threshold: result.rule.threshold, minAdjacentSlices: 2 })
  t.equal(result.conclusion, expected.conclusion)
  t.same(result.positiveRanges, expected.positiveRanges)
  t.equal(study.verdict, result.conclusion)
  t.not(result.conclusion, 'Undetermined')

  const one = await (await fetch(`${http}/predictions/${result.slices[0].predictionId as string}`)).json()
  t.equal(one.caller, `dicom:${ALLOWED}`, 'instances pushed over DICOM belong to the calling AE')
})

t.test('a non-CT instance gets a failure status and is counted as failed in its study; the association goes on', async (t) => {
  const series = await writeCtSeries(join(work, 'mixed'), { slices: 3 })
  const mr = await writeCtSeries(join(work, 'mr'), {
    slices: 1, studyInstanceUid: series.studyInstanceUid, attributes: { SOPClassUID: SOP_CLASS.mr, Modality: 'MR' }
  })
  const pushed = await dcmtk('storescu', ['-v', '--no-halt', '-aec', 'KIDNEYSTONE', '-aet', ALLOWED, '127.0.0.1', port, series.files[0], mr.files[0], series.files[1], series.files[2]])
  t.match(pushed.output, /Received Store Response \(Refused: SOPClassNotSupported\)/)
  t.equal(pushed.output.match(/Received Store Response \(Success\)/g)?.length, 3, 'the CT instances after it are stored')

  let study: any
  for (let attempt = 0; attempt < 100 && study?.series?.length !== 2; attempt++) { // refusals are recorded in the background
    study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const refused = study.series.find((s: any) => s.seriesInstanceUid === mr.seriesInstanceUid)
  t.same(refused.instances, { received: 1, classified: 0, failed: 1 })
  t.same(refused.failures.map((f: any) => [f.sopInstanceUid, f.code]), [[mr.sopInstanceUids[0], 'UNSUPPORTED_SOP_CLASS']])
  t.same(study.series.find((s: any) => s.seriesInstanceUid === series.seriesInstanceUid).instances, { received: 3, classified: 3, failed: 0 })
})

t.test('an instance whose Rescale Slope is not a number, and one with no Rescale Slope beside its intercept, get C000 (cannot understand), not a crash; the association goes on', async (t) => {
  const series = await writeCtSeries(join(work, 'slope'), { slices: 2 })
  const broken = await writeCtSeries(join(work, 'slope-nan'), { slices: 1, studyInstanceUid: series.studyInstanceUid, attributes: { RescaleSlope: 'NaN' } })
  // On the old code the slice without its slope was stored and classified (slope read as 1).
  const half = await writeCtSeries(join(work, 'no-slope'), { slices: 1, studyInstanceUid: series.studyInstanceUid, attributes: { SeriesInstanceUID: broken.seriesInstanceUid } })
  await dcmtkTool('dcmodify', ['-nb', '-e', '(0028,1053)', half.files[0]])
  const pushed = await dcmtk('storescu', ['-v', '--no-halt', '-aec', 'KIDNEYSTONE', '-aet', ALLOWED, '127.0.0.1', port, series.files[0], broken.files[0], half.files[0], series.files[1]])
  t.equal(pushed.output.match(/Received Store Response \(Error: CannotUnderstand\)/g)?.length, 2, pushed.output.slice(-2000))
  t.equal(pushed.output.match(/Received Store Response \(Success\)/g)?.length, 2, 'the slices after it are stored')
  let study: any
  for (let attempt = 0; attempt < 100 && study?.series?.length !== 2; attempt++) {
    study = await (await fetch(`${http}/studies/${series.studyInstanceUid}`)).json()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.same(study.series.find((s: any) => s.seriesInstanceUid === broken.seriesInstanceUid).failures.map((f: any) => f.code), ['CORRUPT_DICOM', 'CORRUPT_DICOM'])
})

t.test('associations: a disallowed calling AE and a wrong called AE are rejected; nothing is classified', async (t) => {
  const series = await writeCtSeries(join(work, 'intruder'), { slices: 1 })
  const intruder = await store(series.files, 'INTRUDER')
  t.not(intruder.code, 0)
  t.match(intruder.output, /Association Rejected/)
  t.match(intruder.output, /Calling AE Title Not Recognized/)
  const wrong = await dcmtk('echoscu', ['-aec', 'SOMEONEELSE', '127.0.0.1', port])
  t.match(wrong.output, /Called AE Title Not Recognized/)
  t.equal((await fetch(`${http}/studies/${series.studyInstanceUid}`)).status, 404)
})

t.test('limits: associations beyond DICOM_MAX_ASSOCIATIONS are rejected (transient); an idle peer is cut off', async (t) => {
  const peers = await Promise.all([rawPeer(app.dicomPort() as number), rawPeer(app.dicomPort() as number)])
  for (const peer of peers) peer.socket.write(associateRequest('KIDNEYSTONE', 'ECHOSCU'))
  for (let attempt = 0; attempt < 100 && peers.some((p) => p.received().length === 0); attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(peers.map((p) => p.received()[0]), [0x02, 0x02], 'both accepted (A-ASSOCIATE-AC)')
  const third = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.match(third.output, /Rejected Transient/)
  t.match(third.output, /Local Limit Exceeded/)
  await Promise.all(peers.map(async (p) => await p.closed)) // DICOM_IDLE_TIMEOUT_S (1 s here): both idle peers are aborted
  t.same(peers.map((p) => p.received().at(-10)), [0x07, 0x07], 'with an A-ABORT')
  const after = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(after.code, 0, 'the slots are free again')
})

t.test('hostile bytes: garbage and an oversized PDU close that connection only', async (t) => {
  const garbage = await rawPeer(app.dicomPort() as number)
  garbage.socket.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await garbage.closed
  const huge = await rawPeer(app.dicomPort() as number)
  const header = Buffer.from([0x01, 0, 0x7f, 0xff, 0xff, 0xff])
  huge.socket.write(header)
  await huge.closed
  t.equal(huge.received()[0], 0x07, 'an A-ABORT, not a read of 2 GiB')
  const echo = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(echo.code, 0, 'the node still answers')
})

t.test('hostile bytes: a command set that never ends is aborted once over its bound, not kept in memory', async (t) => {
  const peer = await rawPeer(app.dicomPort() as number)
  let closed = false
  void peer.closed.then(() => { closed = true })
  peer.socket.write(associateRequest('KIDNEYSTONE', 'ECHOSCU'))
  // P-DATA-TF PDUs of one command PDV each (context 1, command, not last), within the negotiated PDU size
  const fragment = Buffer.alloc(16_000, 0x41)
  const pdv = Buffer.concat([Buffer.alloc(6), fragment])
  pdv.writeUInt32BE(fragment.length + 2, 0); pdv[4] = 1; pdv[5] = 0x01
  const head = Buffer.alloc(6)
  head[0] = 0x04; head.writeUInt32BE(pdv.length, 2)
  const limit = 64 * 1024 * 1024
  let sent = 0
  while (!closed && sent < limit) {
    const flushed = peer.socket.write(Buffer.concat([head, pdv]))
    sent += head.length + pdv.length
    if (!flushed) await Promise.race([new Promise((resolve) => peer.socket.once('drain', resolve)), peer.closed])
  }
  await peer.closed
  t.ok(sent < limit, `the node closed the association after ${(sent / 1024 / 1024).toFixed(1)} MiB of one command, before ${limit / 1024 / 1024} MiB`)
  const received = peer.received()
  t.same([received[0], received[received.length - 10]], [0x02, 0x07], 'an A-ASSOCIATE-AC, then an A-ABORT')
  const echo = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(echo.code, 0, 'the node still answers')
})

t.test('slow peers: a PDU trickled a byte at a time is aborted once it has taken DICOM_IDLE_TIMEOUT_S', async (t) => {
  // Never silent for the idle timeout (1 s here), yet never finishing its A-ASSOCIATE-RQ: DICOM_MAX_ASSOCIATIONS x 2
  // such connections shut every PACS out for as long as they trickle. One byte every 400 ms: the idle timeout never
  // fires, the request would take a minute and a half.
  const peer = await rawPeer(app.dicomPort() as number)
  let closed = false
  void peer.closed.then(() => { closed = true })
  const request = associateRequest('KIDNEYSTONE', 'ECHOSCU')
  let sent = 0
  for (; sent < 10 && !closed; sent++) {
    peer.socket.write(request.subarray(sent, sent + 1))
    await new Promise((resolve) => setTimeout(resolve, 400))
  }
  t.ok(closed, `the connection was closed after ${sent} of the ${request.length} bytes`)
  t.equal(peer.received()[0], 0x07, 'with an A-ABORT')
  const echo = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(echo.code, 0, 'the node still answers')
})

t.test('slow peers: C-ECHOs or P-DATA-TF of a few bytes, sent just often enough to never be idle, are aborted for too little instance data', async (t) => {
  // Whole, valid PDUs every 400 ms: neither the idle timeout (1 s here) nor the PDU deadline ever fires, and before
  // DICOM_MIN_RATE_BYTES_S DICOM_MAX_ASSOCIATIONS such peers held every slot for as long as they kept sending.
  const store = commandSet(0x0001, 1)
  const peers = {
    'repeated C-ECHO': (n: number) => pDataPdu(commandSet(0x0030, n + 1), { command: true, last: true }),
    'a command sent a byte at a time': (n: number) => pDataPdu(store.subarray(n, n + 1), { command: true, last: false }),
    'a data set sent a few bytes at a time': (n: number) => n === 0
      ? pDataPdu(store, { command: true, last: true })
      : pDataPdu(Buffer.alloc(16, n), { command: false, last: false })
  }
  for (const [name, pdu] of Object.entries(peers)) {
    const peer = await rawPeer(app.dicomPort() as number)
    let closed = false
    void peer.closed.then(() => { closed = true })
    peer.socket.write(associateRequest('KIDNEYSTONE', 'ECHOSCU'))
    let sent = 0
    for (; sent < 10 && !closed; sent++) {
      peer.socket.write(pdu(sent))
      await new Promise((resolve) => setTimeout(resolve, 400))
    }
    t.ok(closed, `${name}: the association was aborted after ${sent} PDUs`)
    const received = peer.received()
    t.same([received[0], received[received.length - 10]], [0x02, 0x07], `${name}: an A-ASSOCIATE-AC, then an A-ABORT`)
    // CommandField (0000,0100) = C-ECHO-RSP: the node took them for the valid requests they are.
    if (name === 'repeated C-ECHO') t.ok(received.includes(Buffer.from([0, 0, 0, 1, 2, 0, 0, 0, 0x30, 0x80])), 'the echoes were answered')
  }
  const echo = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '127.0.0.1', port])
  t.equal(echo.code, 0, 'the node still answers')
})

/** A TCP relay to the node that pads the AE titles of its client's A-ASSOCIATE-RQ with NULs instead of spaces. */
async function nulPaddingLink (t: Test): Promise<string> {
  const relay = createServer((client) => {
    const node = connect(app.dicomPort() as number, '127.0.0.1')
    let first = true
    client.on('data', (chunk: Buffer) => {
      // The called and calling AE titles: bytes 10-25 and 26-41 of the first PDU (storescu writes it in one piece).
      if (first) for (let i = 10; i < 42; i++) if (chunk[i] === 0x20) chunk[i] = 0
      first = false
      node.write(chunk)
    })
    node.pipe(client)
    for (const socket of [client, node]) socket.on('error', () => {}).on('close', () => { client.destroy(); node.destroy() })
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => relay.close(() => resolve())))
  return String((relay.address() as AddressInfo).port)
}

t.test('AE titles: NUL padding is padding; a calling AE title that is none (a control character, only spaces) is rejected', async (t) => {
  // On the old code NUL padding stayed part of the title: 'KIDNEYSTONE\0\0\0\0\0' was not this node (Called AE Title
  // Not Recognized), and without DICOM_ALLOWED_AES a calling 'PACS\0...' became the caller of records PostgreSQL cannot
  // hold (text without NUL): every instance was refused Out of Resources (A700), to be sent again forever.
  const series = await writeCtSeries(join(work, 'nul-padding'), { slices: 1 })
  const pushed = await dcmtk('storescu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', ALLOWED, '127.0.0.1', await nulPaddingLink(t), ...series.files])
  t.equal(pushed.code, 0, pushed.output.slice(-2000))
  t.match(pushed.output, /Received Store Response \(Success\)/)

  const open = await recordsApp(t, RECORDS_OFF, { dicomNode: { ...loadConfig().dicomNode, port: 0 } })
  /** The node's answer to an A-ASSOCIATE-RQ: its PDU type, and for a rejection (0x03) its reason. */
  const answer = async (callingAe: string): Promise<number[]> => {
    const peer = await rawPeer(open.dicomPort() as number)
    peer.socket.write(associateRequest('KIDNEYSTONE', callingAe))
    for (let attempt = 0; attempt < 100 && peer.received().length < 10; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
    peer.socket.destroy()
    const received = peer.received()
    return received[0] === 0x03 ? [0x03, received[9]] : [received[0]]
  }
  for (const title of ['PACS\0B', 'PACS\x01', 'PACS\\1', '']) {
    t.same(await answer(title), [0x03, 3], `${JSON.stringify(title)}: A-ASSOCIATE-RJ, calling AE title not recognized (an A-ASSOCIATE-AC on the old code)`)
  }
  t.same(await answer('PACS B'), [0x02], 'a title with a space inside is one')
})

/** A TCP relay to the node that forwards what its client sends at `bytesPerSecond` (a tenth every 100 ms): a slow link. */
async function slowLink (t: Test, bytesPerSecond: number): Promise<string> {
  const relay = createServer((client) => {
    const node = connect(app.dicomPort() as number, '127.0.0.1')
    let queued = Buffer.alloc(0)
    let ended = false
    client.on('data', (chunk: Buffer) => { queued = Buffer.concat([queued, chunk]); if (queued.length > bytesPerSecond) client.pause() })
    client.on('end', () => { ended = true })
    const tick = setInterval(() => {
      node.write(queued.subarray(0, bytesPerSecond / 10))
      queued = queued.subarray(bytesPerSecond / 10)
      if (queued.length <= bytesPerSecond) client.resume()
      if (ended && queued.length === 0) node.end()
    }, 100)
    node.pipe(client)
    for (const socket of [client, node]) socket.on('error', () => {}).on('close', () => { clearInterval(tick); client.destroy(); node.destroy() })
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(async () => await new Promise<void>((resolve) => relay.close(() => resolve())))
  return String((relay.address() as AddressInfo).port)
}

t.test('a push over a slow link is not cut: 512x512 slices at 128 KiB/s, each taking four DICOM_IDLE_TIMEOUT_S to arrive', async (t) => {
  // The bound is instance data per DICOM_IDLE_TIMEOUT_S, not whole instances: a slice of 518 KiB takes 4 s here, four
  // times the 1 s timeout, and brings 128 KiB each second, far over DICOM_MIN_RATE_BYTES_S (8 KiB/s).
  const series = await writeCtSeries(join(work, 'slow-link'), { slices: 2 })
  const pushed = await dcmtk('storescu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', ALLOWED, '127.0.0.1', await slowLink(t, 128 * 1024), ...series.files])
  t.equal(pushed.code, 0, pushed.output.slice(-2000))
  t.equal(pushed.output.match(/Received Store Response \(Success\)/g)?.length, 2, 'both slices stored on one association')
})

t.test('DICOM_MIN_RATE_BYTES_S: 8 KiB/s by default, 0 turns it off, a negative or non-numeric value stops start-up', async (t) => {
  t.equal(loadConfig({}).dicomNode.minRateBytesPerS, 8192)
  t.equal(loadConfig({ DICOM_MIN_RATE_BYTES_S: '0' }).dicomNode.minRateBytesPerS, 0)
  for (const value of ['-1', 'fast']) t.throws(() => loadConfig({ DICOM_MIN_RATE_BYTES_S: value }), /^Invalid environment variable DICOM_MIN_RATE_BYTES_S=/, value)
})
