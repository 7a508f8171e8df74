// The thread that owns the onnxruntime session (see session.ts). Plain JavaScript on purpose: a worker does not
// inherit a TypeScript loader registered through tsx's API (as bin/kidney-stone.js does), only one in execArgv.
import { parentPort, workerData } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'

const { onnxPath, options } = workerData
let session
try {
  session = await ort.InferenceSession.create(onnxPath, options)
  parentPort.postMessage({ type: 'ready', outputNames: session.outputNames })
} catch (error) {
  parentPort.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
  process.exit(1)
}

// One message at a time, in order: a close must not release the session under a run sent before it.
let previous = Promise.resolve()
parentPort.on('message', (message) => { previous = previous.then(async () => await handle(message)) })

async function handle (message) {
  if (message.type === 'close') {
    await session.release()
    parentPort.close()
    return
  }
  const { id, input, dims, names } = message
  try {
    const results = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, dims) }, names)
    const outputs = Object.fromEntries(names.map((name) => [name, { values: results[name].data, dims: results[name].dims }]))
    // the input buffer goes back for reuse (session.ts)
    parentPort.postMessage({ type: 'result', id, outputs, input }, [input.buffer])
  } catch (error) {
    parentPort.postMessage({ type: 'error', id, message: error instanceof Error ? error.message : String(error), input }, [input.buffer])
  }
}
