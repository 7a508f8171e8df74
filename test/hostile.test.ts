import { readdir, readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t, { type Test } from 'tap'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../plugins/app/config.js'
import { ErrorSchema } from '../schemas/error.js'
import { buildHostileCorpus, isExpected, mayBeAccepted, type Category } from './hostile/corpus.js'
import { DICOM_CATEGORIES } from './hostile/dicom-cases.js'
import { BOUNDARY, encodeMultipart } from './hostile/request-cases.js'
import { build, ctKidneyImage, fileUpload } from './helper.js'

// A real collection, not a hint: V8 exposes gc() to this file only, without a node flag for the whole suite.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

const STORED_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(jpg|png|dcm)$/
const MB = 1024 * 1024

const ALL_CATEGORIES: Category[] = ['truncated', 'bit-flip', 'wrong-magic', 'polyglot', 'other-format', 'bomb',
  'valid-variant', 'tiny-file', 'file-too-large', 'name-and-type', 'filename', 'multiple-files', 'missing-file',
  'extra-fields', 'malformed-multipart', 'non-multipart', ...DICOM_CATEGORIES]

function memory (): { heapUsed: number, rss: number } {
  collectGarbage()
  collectGarbage()
  const { heapUsed, rss } = process.memoryUsage()
  return { heapUsed, rss }
}

async function storedNames (app: FastifyInstance): Promise<string[]> {
  return await readdir(app.config.uploadDir)
}

/**
 * The app of these tests keeps uploads (so that storage can be checked) and has no rate limit. Its DICOM decoder
 * threads give their memory back after any file that grew them past 128 MiB.
 */
async function hostileApp (test: Parameters<typeof build>[0], config = {}): Promise<FastifyInstance> {
  return await build(test, {
    config: {
      uploadMaxAgeMs: 3_600_000,
      rateLimit: { max: 0, windowMs: 60_000 },
      // DICOM files at the pixel budget take seconds on a loaded 2-core machine and must not be cut off by the deadline.
      handlerTimeoutMs: 20_000,
      dicomDecoders: { ...loadConfig().dicomDecoders, maxWorkerMemoryBytes: 128 * MB },
      ...config
    }
  })
}

t.test('every hostile case gets its typed answer, rejected input leaves nothing on disk, memory returns', async (t) => {
  const app = await hostileApp(t)
  const cases = await buildHostileCorpus(app.config)
  t.ok(cases.length >= 200, `the corpus has ${cases.length} cases`)
  t.same(ALL_CATEGORIES.filter((category) => !cases.some((c) => c.category === category)), [], 'every category is covered')

  // Warm-up: the first decodes and inferences allocate caches (and start the DICOM decoder threads) that belong in
  // the baseline.
  const slice = await ctKidneyImage('test/stone')
  const dicom = await readFile(new URL('../../shared/data/dicom/ct1-unc-jpeg-ls.dcm', import.meta.url))
  for (let i = 0; i < 3; i++) {
    await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice) })
    await Promise.all([0, 1].map(async () => await app.inject({ method: 'POST', url: '/predict', ...fileUpload(dicom, 'slice.dcm') })))
  }
  const baseline = memory()

  const wrongAnswers: string[] = []
  const untypedErrors: string[] = []
  const storageFaults: string[] = []
  let accepted = 0
  for (const hostile of cases) {
    const before = await storedNames(app)
    const res = await app.inject(hostile.request)
    const label = `${hostile.category} / ${hostile.name}`
    let body: unknown
    try { body = res.json() } catch { body = undefined }
    if (!isExpected(hostile.expected, res.statusCode, body)) {
      wrongAnswers.push(`${label}: got ${res.statusCode} ${JSON.stringify(body ?? res.body.slice(0, 80))}`)
    }
    if (res.statusCode !== 200 && (!Value.Check(ErrorSchema, body) || (body as { statusCode: number }).statusCode !== res.statusCode)) {
      untypedErrors.push(`${label}: ${res.body.slice(0, 120)}`)
    }
    const added = (await storedNames(app)).filter((name) => !before.includes(name))
    if (res.statusCode === 200) {
      accepted++
      const id = (body as { id: string }).id
      if (added.length !== 1 || !STORED_NAME.test(added[0]) || !added[0].startsWith(id)) {
        storageFaults.push(`${label}: stored ${JSON.stringify(added)} for id ${id}`)
      }
      if (!mayBeAccepted(hostile.expected)) storageFaults.push(`${label}: accepted although it must be refused`)
    } else if (added.length > 0) {
      storageFaults.push(`${label}: rejected but stored ${JSON.stringify(added)}`)
    }
  }
  t.same(wrongAnswers, [], 'each case got one of its expected answers')
  t.same(untypedErrors, [], 'every refusal has the typed body { statusCode, code, error, message }')
  t.same(storageFaults, [], 'only accepted uploads are stored, each under <uuid>.<detected type>')
  t.ok(accepted > 0 && accepted < cases.length, `${accepted} accepted, ${cases.length - accepted} refused`)

  const live = await app.inject({ method: 'GET', url: '/health/live' })
  t.equal(live.statusCode, 200, 'still live after the corpus')
  const again = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice) })
  t.equal(again.statusCode, 200, 'still classifies after the corpus')

  const after = memory()
  const heapGrowthMb = (after.heapUsed - baseline.heapUsed) / MB
  const rssGrowthMb = (after.rss - baseline.rss) / MB
  t.comment(`heap ${(baseline.heapUsed / MB).toFixed(0)} -> ${(after.heapUsed / MB).toFixed(0)} MB, ` +
    `rss ${(baseline.rss / MB).toFixed(0)} -> ${(after.rss / MB).toFixed(0)} MB`)
  t.ok(heapGrowthMb < 64, `JS heap back near its baseline after GC (+${heapGrowthMb.toFixed(1)} MB)`)
  t.ok(rssGrowthMb < 256, `RSS back near its baseline (+${rssGrowthMb.toFixed(1)} MB; allocator and libvips caches keep some)`)
})

interface RawAnswer { status: number, headers: string, body: string }

/** Sends bytes over a plain TCP connection (optionally in timed pieces) and reads until the server closes it. */
async function rawExchange (port: number, pieces: Array<Buffer | string>, gapMs = 0): Promise<RawAnswer> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let timer: NodeJS.Timeout | undefined
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('latin1')
      const [head, ...rest] = text.split('\r\n\r\n')
      resolve({ status: Number(head.split(' ')[1]), headers: head, body: rest.join('\r\n\r\n') })
    })
    const queue = [...pieces]
    const sendNext = (): void => {
      const piece = queue.shift()
      if (piece === undefined || socket.destroyed) return
      socket.write(piece)
      timer = setTimeout(sendNext, gapMs)
    }
    socket.on('connect', sendNext)
  })
}

function typedCode (t: Test, answer: RawAnswer, status: number, code: string): void {
  t.equal(answer.status, status, `HTTP ${status}`)
  let body: unknown
  try { body = JSON.parse(answer.body) } catch { body = answer.body }
  t.ok(Value.Check(ErrorSchema, body), 'typed body')
  t.equal((body as { code?: string }).code, code)
}

t.test('on a real listening server: slow trickles are cut off, non-multipart and broken HTTP get typed answers', async (t) => {
  const app = await hostileApp(t, { requestTimeoutMs: 1_500, headersTimeoutMs: 1_000 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const slice = await ctKidneyImage('test/normal')

  const body = encodeMultipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: slice }])
  const head = `POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
    `Content-Length: ${body.length}\r\n\r\n`
  const trickle = Array.from({ length: 200 }, (_, i) => body.subarray(i * 8, i * 8 + 8))
  const slowBody = await rawExchange(port, [head, ...trickle], 100)
  typedCode(t, slowBody, 408, 'REQUEST_TIMEOUT')

  const slowHeaders = await rawExchange(port, [...'POST /predict HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' + 'a'.repeat(100)], 50)
  typedCode(t, slowHeaders, 408, 'REQUEST_TIMEOUT')

  const garbage = await rawExchange(port, ['\x16\x03\x01 this is not HTTP\r\n\r\n'])
  typedCode(t, garbage, 400, 'BAD_REQUEST')

  const hugeHeader = await rawExchange(port, [`GET /health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`])
  typedCode(t, hugeHeader, 431, 'HEADERS_TOO_LARGE')
  // The request line counts too: a long query string was told 'The request headers are too large.' on the old code.
  const hugeQuery = await rawExchange(port, [`GET /predictions?since=${'1'.repeat(20 * 1024)} HTTP/1.1\r\nHost: localhost\r\n\r\n`])
  typedCode(t, hugeQuery, 431, 'HEADERS_TOO_LARGE')
  t.match(JSON.parse(hugeQuery.body).message, /request line \(the URL with its query\) and the headers are too large: together they may take at most 16384 bytes/)

  const expectation = await rawExchange(port, ['GET /health/live HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n'])
  typedCode(t, expectation, 417, 'EXPECTATION_FAILED')

  const url = `http://127.0.0.1:${port}/predict`
  for (const [type, payload] of [['application/json', '{"file":"abc"}'], ['text/plain', 'hello'],
    ['application/x-www-form-urlencoded', 'file=abc'], ['application/octet-stream', slice]] satisfies Array<[string, string | Buffer]>) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(Buffer.from(payload)) })
    const json = await res.json() as { code: string }
    t.equal(res.status, 415, `${type}: 415`)
    t.equal(json.code, 'UNSUPPORTED_MEDIA_TYPE')
    t.equal(res.headers.get('x-content-type-options'), 'nosniff', 'helmet headers on refusals too')
  }
  const chunked = await rawExchange(port, [`POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
    'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'])
  typedCode(t, chunked, 415, 'UNSUPPORTED_MEDIA_TYPE')

  t.same(await storedNames(app), [], 'nothing was stored')
  const ok = await fetch(url, { method: 'POST', body: (() => {
    const form = new FormData()
    form.append('file', new Blob([new Uint8Array(slice)], { type: 'image/jpeg' }), 'slice.jpg')
    return form
  })() })
  t.equal(ok.status, 200, 'the server still classifies a valid upload afterwards')
})
