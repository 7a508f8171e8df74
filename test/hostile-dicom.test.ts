import { readFile } from 'node:fs/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import { ErrorSchema } from '../schemas/error.js'
import { isExpected } from './hostile/corpus.js'
import { DICOM_CATEGORIES, dicomFileCases } from './hostile/dicom-cases.js'
import { build } from './helper.js'

// A real collection before each memory reading (this file only, no node flag for the whole suite).
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void
const MB = 1024 * 1024

async function rssAfterCollection (): Promise<number> {
  collectGarbage()
  await new Promise((resolve) => setTimeout(resolve, 50))
  collectGarbage()
  return process.memoryUsage().rss
}

/** POST /predict over HTTP, the file alone in the field "file". */
async function upload (url: string, data: Buffer): Promise<Response> {
  const form = new FormData()
  form.append('file', new Blob([new Uint8Array(data)], { type: 'application/dicom' }), 'slice.dcm')
  return await fetch(`${url}/predict`, { method: 'POST', body: form })
}

t.test('every DICOM payload family: typed answer, /health/live answering during it, process alive, memory back after recycles', async (t) => {
  // A small pixel budget keeps the RLE-at-the-budget case quick; decoder threads recycle past 64 MiB.
  const app = await build(t, {
    config: {
      maxPixels: 2048 * 2048,
      rateLimit: { max: 0, windowMs: 60_000 },
      dicomDecoders: { workers: 2, maxQueue: 8, timeoutMs: 30_000, maxWorkerMemoryBytes: 64 * MB }
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const cases = await dicomFileCases(app.config.maxPixels)
  t.same(DICOM_CATEGORIES.filter((category) => !cases.some((c) => c.category === category)), [], 'every family is generated')

  // Warm-up: both decoder threads started and their codecs compiled, as after the first DICOM files in service.
  const real = await readFile(new URL('../../shared/data/dicom/ct1-unc-jpeg-ls.dcm', import.meta.url))
  for (let i = 0; i < 2; i++) await Promise.all([upload(url, real), upload(url, real)])
  const start = await rssAfterCollection()

  const pool = app.model.get().dicomDecoders
  const wrong: string[] = []
  let refused = 0
  for (const hostile of cases) {
    const label = `${hostile.category} / ${hostile.name}`
    // The probe is sent together with the upload: it must be answered, whatever the upload costs the decoder.
    const [res, live] = await Promise.all([upload(url, hostile.data), fetch(`${url}/health/live`)])
    const body: unknown = await res.json()
    if (!isExpected(hostile.expected, res.status, body)) wrong.push(`${label}: ${res.status} ${JSON.stringify(body)}`)
    if (res.status !== 200) {
      refused++
      if (res.status < 400 || res.status >= 500 || !Value.Check(ErrorSchema, body)) wrong.push(`${label}: not a typed 4xx`)
      if (/dicomParser|buffer overrun|Maximum call stack|Cannot create a Buffer|RangeError/i.test((body as { message?: string }).message ?? '')) {
        wrong.push(`${label}: library or runtime text in ${JSON.stringify(body)}`)
      }
    }
    if (live.status !== 200) wrong.push(`${label}: /health/live answered ${live.status} during the request`)
  }
  t.same(wrong, [], 'each case got its typed answer, liveness answered during every one')
  t.ok(refused >= cases.length - 6, `${refused} of ${cases.length} refused with a typed 4xx (the rest are controls)`)

  t.equal((await fetch(`${url}/health/live`)).status, 200, 'the process is alive after every family')
  const again = await upload(url, real)
  t.equal(again.status, 200, 'and still classifies a real DICOM slice')
  t.ok(pool.stats.recycled + pool.stats.crashed + pool.stats.timedOut > 0, `decoder threads were replaced (${JSON.stringify(pool.stats)})`)
  t.equal(pool.size, 2, 'the pool is back to its two threads')

  const end = await rssAfterCollection()
  t.comment(`RSS ${(start / MB).toFixed(0)} -> ${(end / MB).toFixed(0)} MiB after ${cases.length} payloads`)
  t.ok(end < start + 256 * MB, `RSS back near the start after the threads were recycled (+${((end - start) / MB).toFixed(0)} MiB)`)
})
