// A DICOM decoder thread of the pool in decoder-pool.ts: parse, budgets, codecs and window run here, off the
// service's event loop. Plain JavaScript that loads the TypeScript decoder through tsx's API: a worker inherits a
// TypeScript loader given in execArgv (bin/serve, the tests) but not one registered through the API (the CLI).
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parentPort, workerData } from 'node:worker_threads'
import { tsImport } from 'tsx/esm/api'

const { decodeDicomInstance } = await tsImport('./decode-dicom.ts', import.meta.url)
// A real collection before the thread's memory is judged: this isolate only, without a flag for the process.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc')

/** The thread's own memory: its V8 heap and what lives outside it (WebAssembly memories, array buffers). */
function memoryBytes () {
  const { heapUsed, external } = process.memoryUsage()
  return heapUsed + external
}

/**
 * The memory the thread keeps: what a file left as garbage does not count, so it is collected first when the
 * measure is over the limit (buffers are freed a turn after the collection). What remains, WebAssembly memory
 * above all, only a new thread gives back.
 */
async function keptBytes () {
  if (memoryBytes() <= workerData.maxMemoryBytes) return memoryBytes()
  collectGarbage()
  await new Promise((resolve) => setTimeout(resolve, 0))
  collectGarbage()
  return memoryBytes()
}

/** Pixels that own their whole ArrayBuffer move to the pool without a copy; a slice of Node's buffer pool is copied. */
function transferable (pixels) {
  return pixels.byteOffset === 0 && pixels.byteLength === pixels.buffer.byteLength ? pixels : Uint8Array.prototype.slice.call(pixels)
}

/** Typed refusals keep their code, status and message; anything else is a bug, reported for the log. */
function describe (error) {
  if (typeof error?.code === 'string' && typeof error?.statusCode === 'number') {
    return { code: error.code, statusCode: error.statusCode, message: error.message }
  }
  return { unexpected: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }
}

parentPort.on('message', async ({ id, bytes, options }) => {
  try {
    const instance = await decodeDicomInstance(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), options)
    const frames = instance.frames.map(({ image, ...frame }) => ({ ...frame, image: { ...image, pixels: transferable(image.pixels) } }))
    parentPort.postMessage({ id, instance: { ...instance, frames }, memoryBytes: await keptBytes() }, frames.map((frame) => frame.image.pixels.buffer))
  } catch (error) {
    parentPort.postMessage({ id, error: describe(error), memoryBytes: await keptBytes() })
  }
})
parentPort.postMessage({ ready: true })
