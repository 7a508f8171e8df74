import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Worker } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import t from 'tap'
import { readModelSpec, sidecarPathFor } from '../inference/model-spec.js'
import { decodeForModel } from '../inference/preprocess.js'
import { toTensorData } from '../inference/tensor.js'
import { ModelSession, type SessionOptions } from '../inference/session.js'
import { loadConfig } from '../plugins/app/config.js'
import { ctKidneyFiles } from './helper.js'

// The session runs onnxruntime in a worker thread; these tests hold it to what an in-thread session gives.

const { modelPath } = loadConfig()
const spec = await readModelSpec(sidecarPathFor(modelPath))
const options: SessionOptions = { intraOpThreads: 1, interOpThreads: 1, graphOptimization: 'all' }
const files = [...await ctKidneyFiles('test/stone', 3), ...await ctKidneyFiles('test/normal', 3)]
const pixels = await Promise.all(files.map(async (file) => await decodeForModel(await readFile(file), spec, { channels: 1, maxPixels: 50_000_000 })))
const tensors = pixels.map((image) => toTensorData(image, spec))

function concat (parts: Float32Array[]): Float32Array {
  const batch = new Float32Array(parts.reduce((n, p) => n + p.length, 0))
  parts.reduce((offset, p) => { batch.set(p, offset); return offset + p.length }, 0)
  return batch
}

const dims = (count: number): number[] => [count, spec.input.height, spec.input.width, spec.input.channels]

t.equal(spec.input.layout, 'NHWC', 'the dims below are written for the shipped model')

t.test('the worker gives exactly what an in-thread onnxruntime session gives, for every output', async (t) => {
  const direct = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' })
  t.teardown(async () => await direct.release())
  const session = await ModelSession.create(modelPath, spec, options)
  t.teardown(async () => await session.close())
  t.same(session.outputNames, direct.outputNames)
  const expected = await direct.run({ [direct.inputNames[0]]: new ort.Tensor('float32', concat(tensors), dims(tensors.length)) })
  const { outputs: actual, preprocessMs } = await session.runOutputs(pixels, session.outputNames)
  t.ok(preprocessMs >= 0, 'the normalisation time is reported')
  for (const name of direct.outputNames) {
    t.same(Array.from(actual[name].values), Array.from(expected[name].data as Float32Array), `${name}: same values`)
    t.same(actual[name].dims, expected[name].dims, `${name}: same shape`)
  }
  const { values, width, cam } = (await session.run(pixels)).outputs
  t.equal(width, 2)
  t.same(Array.from(values), Array.from(expected[direct.outputNames[0]].data as Float32Array), 'run returns the first output')
  t.ok(session.hasCam, 'the shipped model declares a cam output')
  t.same(cam?.dims, [pixels.length, 2, 14, 14])
  t.same(Array.from(cam?.values ?? []), Array.from(expected.cam.data as Float32Array), 'and run returns cam from the same inference')
})

t.test('batch buffers come back from the worker and are reused without leaking rows between batches', async (t) => {
  const session = await ModelSession.create(modelPath, spec, options)
  t.teardown(async () => await session.close())
  const alone = await Promise.all(pixels.map(async (image) => Array.from((await session.run([image])).outputs.values)))
  const spares = (session as unknown as { spareBuffers: ArrayBuffer[] }).spareBuffers
  for (const [count, first] of [[6, 0], [1, 5], [3, 2], [1, 0], [6, 0]]) {
    const batch = pixels.slice(first, first + count)
    const { values } = (await session.run(batch)).outputs
    batch.forEach((_, i) => t.same(Array.from(values.subarray(2 * i, 2 * i + 2)), alone[first + i], `batch of ${count}, image ${first + i}`))
    t.ok(spares.length > 0 && spares.length <= 2, `a buffer came back (${spares.length} kept)`)
  }
  t.ok(spares.every((buffer) => buffer.byteLength >= 6 * tensors[0].length * 4), 'the kept buffers fit the largest batch')
})

t.test('concurrent runs each get their own rows back', async (t) => {
  const session = await ModelSession.create(modelPath, spec, options)
  t.teardown(async () => await session.close())
  const alone = await Promise.all(pixels.map(async (image) => Array.from((await session.run([image])).outputs.values)))
  t.not(alone[0].join(), alone[pixels.length - 1].join(), 'the images give different logits, so a mix-up would show')
  // all sent before the first answer arrives, in an order different from the one above
  const together = await Promise.all([...pixels.keys()].reverse().map(async (i) => ({ i, values: Array.from((await session.run([pixels[i]])).outputs.values) })))
  for (const { i, values } of together) t.same(values, alone[i], `image ${i}`)
})

t.test('a run onnxruntime refuses fails alone; the session keeps serving', async (t) => {
  const session = await ModelSession.create(modelPath, spec, options)
  t.teardown(async () => await session.close())
  await t.rejects(session.run([pixels[0].subarray(1)]), /size/i, 'one value short of an image')
  await t.rejects(session.runOutputs([pixels[0]], ['no-such-output']), /no-such-output|output/i)
  t.equal((await session.run([pixels[0]])).outputs.values.length, 2, 'the next valid run still works')
  t.equal(pixels[0].length, spec.input.width * spec.input.height, 'the caller\'s pixels stay usable')
})

t.test('a model that cannot be loaded fails create with onnxruntime\'s reason', async (t) => {
  await t.rejects(ModelSession.create('/nonexistent/model.onnx', spec, options), /nonexistent\/model\.onnx|No such file|Load model/i)
  await t.rejects(ModelSession.create(sidecarPathFor(modelPath), spec, options), /protobuf|parse|load|model/i, 'a JSON file is not a model')
})

t.test('after close, runs fail with a clear error; closing twice is harmless', async (t) => {
  const session = await ModelSession.create(modelPath, spec, options)
  const pending = session.run([pixels[0]])
  await session.close()
  t.equal((await pending).outputs.values.length, 2, 'a run sent before close still completes')
  await t.rejects(session.run([pixels[0]]), /session is closed/)
  await session.close()
})

t.test('a worker that dies fails its pending and later runs with a typed 503 and reports it', async (t) => {
  const session = await ModelSession.create(modelPath, spec, options)
  t.equal(session.failure, undefined)
  // A crash cannot be caused through the public API: end the thread from outside, as a fatal error would.
  // Terminate first, then send the run: a thread terminated inside onnxruntime's native run aborts the whole
  // process (the binding throws a C++ Napi::Error into a stopping environment), in about one of ten tries.
  const stopping = (session as unknown as { worker: Worker }).worker.terminate()
  const pending = session.run([pixels[0]])
  await stopping
  await t.rejects(pending, { code: 'MODEL_FAILED', statusCode: 503 })
  await t.rejects(session.run([pixels[0]]), { code: 'MODEL_FAILED', statusCode: 503, message: /exited with code 1/ })
  t.match(session.failure, { code: 'MODEL_FAILED', message: /exited with code 1/ })
  await session.close()
})

t.test('an idle session does not keep the process alive; a pending run does', async (t) => {
  // no close(): the script must print its result (the run kept the process up) and then exit by itself
  const inference = new URL('../inference/', import.meta.url).href
  const dir = t.testdir({
    'script.mts': `
      import { ModelSession } from '${inference}session.ts'
      import { readModelSpec, sidecarPathFor } from '${inference}model-spec.ts'
      const spec = await readModelSpec(sidecarPathFor(${JSON.stringify(modelPath)}))
      const session = await ModelSession.create(${JSON.stringify(modelPath)}, spec, ${JSON.stringify(options)})
      session.run([new Uint8Array(${pixels[0].length})]).then(({ outputs }) => console.log('logits', outputs.values.length))
    `
  })
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(dir, 'script.mts')], { timeout: 60_000 })
  t.equal(stdout.trim(), 'logits 2')
})
