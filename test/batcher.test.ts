import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../app.js'
import { MicroBatcher, QueueFullError } from '../inference/batcher.js'
import { Classifier, type Classification, type ClassifierOptions } from '../inference/classifier.js'
import { loadConfig } from '../plugins/app/config.js'
import { CT_KIDNEY, build, fileUpload, RECORDS_OFF } from './helper.js'

/** A batcher whose runs are recorded and held until released, so tests decide when a batch finishes. */
function heldBatcher (options: { maxBatchSize: number, maxDelayUs: number, maxQueue: number }) {
  const runs: number[][] = []
  const releases: Array<() => void> = []
  const batcher = new MicroBatcher<number, number>(async (items) => {
    runs.push(items)
    await new Promise<void>((resolve) => releases.push(resolve))
    return items.map((item) => item * 10)
  }, options)
  const releaseAll = async (): Promise<void> => {
    while (releases.length > 0 || batcher.queued > 0) {
      releases.splice(0).forEach((release) => release())
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  return { batcher, runs, releaseAll }
}

t.test('items submitted together run as batches of at most maxBatchSize, each getting its own result', async (t) => {
  const { batcher, runs, releaseAll } = heldBatcher({ maxBatchSize: 4, maxDelayUs: 0, maxQueue: 100 })
  const pending = [1, 2, 3, 4, 5, 6].map((item) => batcher.submit(item))
  await releaseAll()
  const done = await Promise.all(pending)
  t.same(runs, [[1, 2, 3, 4], [5, 6]], 'a full batch at once, the rest as the next batch')
  t.same(done.map((d) => d.result), [10, 20, 30, 40, 50, 60])
  t.same(done.map((d) => d.batchSize), [4, 4, 4, 4, 2, 2])
})

t.test('a lone item is run after the delay without company', async (t) => {
  const { batcher, runs, releaseAll } = heldBatcher({ maxBatchSize: 8, maxDelayUs: 2000, maxQueue: 10 })
  const pending = batcher.submit(7)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(runs, [[7]])
  await releaseAll()
  t.equal((await pending).result, 70)
})

t.test('a full queue refuses at once with QUEUE_FULL 503 and a retry hint, and recovers', async (t) => {
  const { batcher, runs, releaseAll } = heldBatcher({ maxBatchSize: 1, maxDelayUs: 0, maxQueue: 2 })
  const accepted = [1, 2, 3].map((item) => batcher.submit(item)) // 1 runs, 2 and 3 wait
  await new Promise((resolve) => setImmediate(resolve))
  const refused = await batcher.submit(4).catch((error: unknown) => error)
  t.ok(refused instanceof QueueFullError)
  t.match(refused, { code: 'QUEUE_FULL', statusCode: 503 })
  t.ok((refused as QueueFullError).retryAfterSeconds >= 1)
  await releaseAll()
  t.same((await Promise.all(accepted)).map((d) => d.result), [10, 20, 30])
  const after = batcher.submit(5)
  await releaseAll()
  t.equal((await after).result, 50, 'accepted again once the queue has drained')
  t.same(runs.flat(), [1, 2, 3, 5])
})

t.test('a failing run rejects every item of its batch, and the next batch still runs', async (t) => {
  let calls = 0
  const batcher = new MicroBatcher<number, number>(async (items) => {
    calls++
    if (calls === 1) throw new Error('model failed')
    return items
  }, { maxBatchSize: 2, maxDelayUs: 0, maxQueue: 10 })
  const results = await Promise.allSettled([1, 2, 3].map((item) => batcher.submit(item)))
  t.same(results.map((r) => r.status), ['rejected', 'rejected', 'fulfilled'])
  t.equal(calls, 2)
})

t.test('invalid options are refused', async (t) => {
  t.throws(() => new MicroBatcher(async (items) => items, { maxBatchSize: 0, maxDelayUs: 0, maxQueue: 1 }), RangeError)
  t.throws(() => new MicroBatcher(async (items) => items, { maxBatchSize: 1, maxDelayUs: 0.5, maxQueue: 1 }), RangeError)
})

async function realImages (): Promise<Buffer[]> {
  const folders = ['test/stone', 'test/normal', 'originals/stone', 'originals/normal']
  const files = await Promise.all(folders.map(async (folder) =>
    (await readdir(join(CT_KIDNEY, folder))).sort().slice(0, 4).map((name) => join(CT_KIDNEY, folder, name))))
  return await Promise.all(files.flat().map(async (path) => await readFile(path)))
}

async function classifier (t: { teardown: (fn: () => unknown) => void }, options: Partial<ClassifierOptions>): Promise<Classifier> {
  const config = loadConfig()
  const loaded = await Classifier.load(config.modelPath, {
    maxPixels: config.maxPixels,
    intraOpThreads: 1,
    interOpThreads: 1,
    graphOptimization: config.graphOptimization,
    ...options
  })
  t.teardown(async () => await loaded.close())
  return loaded
}

t.test('on real CT images, each batched result is exactly the result of the image run alone', async (t) => {
  const images = await realImages()
  const alone = await classifier(t, { maxBatchSize: 1 })
  const batched = await classifier(t, { maxBatchSize: 8, maxDelayUs: 20_000, sharpConcurrency: 4 })
  const sizes: number[] = []
  batched.observe({ batch: (size) => sizes.push(size) })

  const expected: Classification[] = []
  for (const image of images) expected.push(await alone.classify(image))

  const decoded = await Promise.all(images.map(async (image) => await alone.decode(image)))
  const inferred = await Promise.all(decoded.map(async (pixels) => await batched.infer(pixels)))
  t.same(sizes, [8, 8], 'the 16 preprocessed images ran as two batches of 8')
  inferred.forEach((got, i) => t.same(got.result.probabilities, [expected[i].probabilities.Normal, expected[i].probabilities.Stone],
    `image ${i}: probabilities identical to the single-image run`))

  const classified = await Promise.all(images.map(async (image) => await batched.classify(image)))
  t.ok(sizes.slice(2).some((size) => size > 1), `end to end, some batches held several images (${sizes.slice(2).join(',')})`)
  classified.forEach((got, i) => {
    t.same(got.probabilities, expected[i].probabilities, `image ${i}: same probabilities end to end`)
    t.equal(got.prediction, expected[i].prediction)
  })
})

t.test('QUEUE_FULL is answered as a typed 503 with a Retry-After header', async (t) => {
  const app = await buildApp({ logger: false, config: { uploadMaxAgeMs: 0, records: RECORDS_OFF }, loadClassifier: async () => { throw new Error('no model needed') } })
  app.get('/queue-full', async () => { throw new QueueFullError(64, 3) })
  t.teardown(async () => await app.close())
  const res = await app.inject({ method: 'GET', url: '/queue-full' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '3')
  t.match(res.json(), { statusCode: 503, code: 'QUEUE_FULL', error: 'Service Unavailable' })
})

t.test('under a burst larger than the queue, /predict refuses the excess with QUEUE_FULL and serves the rest', async (t) => {
  const app = await build(t, { config: { batchMaxQueue: 1, batchMaxSize: 1, sharpConcurrency: 1 } })
  const images = await realImages()
  const burst = await Promise.all(Array.from({ length: 24 }, async (_, i) =>
    await app.inject({ method: 'POST', url: '/predict', ...fileUpload(images[8 + (i % 8)]) })))
  const statuses = burst.map((res) => res.statusCode)
  t.ok(statuses.includes(503), 'some requests were refused')
  t.ok(statuses.includes(200), 'some requests were served')
  t.same(statuses.filter((s) => s !== 200 && s !== 503), [], 'nothing else happened')
  for (const res of burst.filter((r) => r.statusCode === 503)) {
    t.equal(res.json().code, 'QUEUE_FULL')
    t.match(res.headers['retry-after'], /^[1-9][0-9]*$/)
  }
})
