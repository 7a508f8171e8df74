import { readFile } from 'node:fs/promises'
import t, { type Test } from 'tap'
import { DEFAULT_DICOM_DECODERS } from '../inference/classifier.js'
import { DicomDecoderPool, type DecoderPoolOptions } from '../inference/dicom/decoder-pool.js'
import { decodeDicomInstance } from '../inference/dicom/decode-dicom.js'
import { loadConfig } from '../plugins/app/config.js'
import { writeDicom } from './helpers/dicom-writer.js'
import { build, multipart } from './helper.js'

const DICOM = new URL('../../shared/data/dicom/', import.meta.url)
const OPTIONS = { channels: 1 as const, maxPixels: 40_000_000 }
const MB = 1024 * 1024

function pool (t: Test, options: Partial<DecoderPoolOptions> = {}): DicomDecoderPool {
  const created = new DicomDecoderPool({ workers: 1, maxQueue: 4, timeoutMs: 60_000, maxWorkerMemoryBytes: 384 * MB, ...options })
  t.teardown(async () => await created.close())
  return created
}

/**
 * A 40-megapixel RLE slice of two values, 4 in its top half and 1028 below (two grey levels in the model's window: a
 * blank slice would be refused before it is classified): seconds of decoding in a thread, a few hundred kilobytes to send.
 */
function bigRle (): Buffer {
  const pixels = 6000 * 6000
  const runs = (value: (run: number) => number): Buffer => {
    const segment = Buffer.alloc(Math.ceil(pixels / 128) * 2)
    for (let i = 0; i < segment.length; i += 2) { segment[i] = 0x81; segment[i + 1] = value(i / 2) }
    return segment
  }
  const high = runs((run) => run < pixels / 256 ? 0x00 : 0x04)
  const low = runs(() => 0x04)
  const header = Buffer.alloc(64)
  header.writeUInt32LE(2, 0); header.writeUInt32LE(64, 4); header.writeUInt32LE(64 + high.length, 8)
  return writeDicom({ transferSyntaxUid: '1.2.840.10008.1.2.5', rows: 6000, columns: 6000, bitsAllocated: 16, signed: false,
    encapsulatedFragment: Buffer.concat([header, high, low]) })
}

t.test('a thread decodes exactly what decodeDicomInstance decodes in this thread, identifiers included', async (t) => {
  const decoders = pool(t)
  for (const name of ['ct1-unc-jpeg-ls.dcm', 'ct1-unc-explicit-big-endian.dcm', 'ct-small-pydicom.dcm']) {
    const bytes = await readFile(new URL(name, DICOM))
    const [inThread, here] = await Promise.all([decoders.decode(bytes, OPTIONS), decodeDicomInstance(bytes, OPTIONS)])
    t.ok(inThread.frames[0].image.pixels.equals(here.frames[0].image.pixels), `${name}: same pixels`)
    t.same({ ...inThread.frames[0].image, pixels: undefined }, { ...here.frames[0].image, pixels: undefined }, `${name}: same size and channels`)
    t.same(inThread.identifiers, here.identifiers, `${name}: same identifiers`)
  }
  t.equal(decoders.stats.decoded, 3)
})

t.test('a file past DECODE_TIMEOUT_MS is abandoned with a typed 422 and its thread replaced', async (t) => {
  // 50 ms: far less than 40 megapixels take to decode on any machine (the decoded frame alone is 80 MB).
  const decoders = pool(t, { timeoutMs: 50 })
  await t.rejects(decoders.decode(bigRle(), OPTIONS), { code: 'DECODE_TIMEOUT', statusCode: 422, message: /not decoded within 50 ms/ })
  t.equal(decoders.stats.timedOut, 1)
  t.equal(decoders.size, 1, 'a replacement thread is started at once')
})

t.test('a full queue is refused at once with 503 DECODER_BUSY and a Retry-After', async (t) => {
  const decoders = pool(t, { workers: 1, maxQueue: 1 })
  const slow = bigRle()
  const running = decoders.decode(slow, OPTIONS)
  const queued = decoders.decode(slow, OPTIONS)
  const refused = await decoders.decode(slow, OPTIONS).then(() => undefined, (error: unknown) => error)
  t.match(refused, { code: 'DECODER_BUSY', statusCode: 503 })
  t.ok((refused as { retryAfterSeconds: number }).retryAfterSeconds >= 1, 'with seconds to wait')
  const [first, second] = await Promise.all([running, queued])
  t.same([first.frames[0].image.width, second.frames[0].image.width], [6000, 6000], 'the running and the queued file still decode')
})

t.test('a thread whose memory grew past the limit is replaced after its file', async (t) => {
  const decoders = pool(t, { maxWorkerMemoryBytes: 64 * MB })
  const decoded = await decoders.decode(bigRle(), OPTIONS)
  t.equal(decoded.frames[0].image.width, 6000)
  t.equal(decoders.stats.recycled, 1, 'recycled: the 40-megapixel frame left it above 64 MiB')
  t.equal(decoders.size, 1, 'and replaced')
  const next = await decoders.decode(await readFile(new URL('ct1-unc-jpeg-ls.dcm', DICOM)), OPTIONS)
  t.equal(next.frames[0].image.width, 512, 'the new thread decodes the next file')
})

t.test('over HTTP: DECODER_BUSY is a typed 503 with Retry-After', async (t) => {
  const app = await build(t, { config: { rateLimit: { max: 0, windowMs: 60_000 }, dicomDecoders: { workers: 1, maxQueue: 0, timeoutMs: 60_000, maxWorkerMemoryBytes: 384 * MB } } })
  const file = (data: Buffer): ReturnType<typeof multipart> => multipart([{ name: 'file', filename: 'a.dcm', contentType: 'application/dicom', data }])
  const slow = bigRle()
  const [first, second] = await Promise.all([app.inject({ method: 'POST', url: '/predict', ...file(slow) }), app.inject({ method: 'POST', url: '/predict', ...file(slow) })])
  const statuses = [first.statusCode, second.statusCode].sort()
  t.same(statuses, [200, 503], 'one decodes, the other is refused')
  const busy = first.statusCode === 503 ? first : second
  t.equal(busy.json().code, 'DECODER_BUSY')
  t.ok(Number(busy.headers['retry-after']) >= 1, 'Retry-After')
})

t.test('the classifier\'s pool defaults (CLI, evaluation) are the service\'s configuration defaults', async (t) => {
  t.same(loadConfig({}).dicomDecoders, DEFAULT_DICOM_DECODERS)
})
