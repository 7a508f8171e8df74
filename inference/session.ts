import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { ModelFailedError } from './errors.js'
import type { ModelSpec } from './model-spec.js'
import { toTensorData } from './tensor.js'

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all'

export interface SessionOptions {
  intraOpThreads: number
  interOpThreads: number
  graphOptimization: GraphOptimizationLevel
}

export interface SessionOutput {
  values: Float32Array
  dims: readonly number[]
}

/** What one batched run gave back, and how long normalising its pixels into the batch tensor took. */
export interface SessionRun<T> {
  outputs: T
  preprocessMs: number
}

/** The output a model may declare next to its logits: per-class activation maps, [batch, classes, h, w]. */
export const CAM_OUTPUT = 'cam'

/** The first output, one row per image, and the activation maps when the model has them. */
export interface BatchOutputs {
  values: Float32Array
  width: number
  cam?: SessionOutput
}

/** Batch buffers kept for reuse: one is in the worker while the next batch is filled. */
const SPARE_BUFFERS = 2

type WorkerMessage =
  | { type: 'ready', outputNames: string[] }
  | { type: 'failed', message: string }
  | { type: 'result', id: number, outputs: Record<string, SessionOutput>, input: Float32Array }
  | { type: 'error', id: number, message: string, input: Float32Array }

interface PendingRun {
  resolve: (outputs: Record<string, SessionOutput>) => void
  reject: (error: Error) => void
}

/**
 * One onnxruntime InferenceSession, created once and reused for every call: recreating sessions leaks
 * memory in onnxruntime-node. onnxruntime-node's `run` computes synchronously on the calling thread, so the
 * session lives in a worker thread (session-worker.js): while the model runs, the main thread keeps parsing
 * uploads and starting decodes. Input and output names are read from the model, not assumed.
 *
 * Callers hand over model-size uint8 pixels; the session normalises them (`toTensorData`) straight into one batch
 * buffer, which travels to the worker and back and is reused. A float tensor per image and a buffer per batch
 * (about 400 kB of external memory per image) were most of what the service allocated, and V8 counts external
 * allocations towards its next full garbage collection (see bin/serve).
 */
export class ModelSession {
  private readonly pending = new Map<number, PendingRun>()
  private readonly spareBuffers: ArrayBuffer[] = []
  /** Size of the largest batch buffer asked for so far: new buffers get at least this, so spares fit. */
  private bufferBytes = 0
  private nextId = 0
  /** Set once the worker has stopped, for whatever reason; later runs fail with it. */
  private stopped: Error | undefined
  private closing: Promise<void> | undefined

  private constructor (
    private readonly worker: Worker,
    private readonly spec: ModelSpec,
    readonly outputNames: readonly string[]
  ) {
    worker.on('message', (message: WorkerMessage) => {
      if (message.type !== 'result' && message.type !== 'error') return
      const run = this.pending.get(message.id)
      this.pending.delete(message.id)
      if (this.pending.size === 0 && this.closing === undefined) worker.unref()
      this.keepSpare(message.input.buffer as ArrayBuffer)
      if (message.type === 'result') run?.resolve(message.outputs)
      else run?.reject(new Error(message.message))
    })
    worker.on('error', (error) => this.stop(new ModelFailedError('its worker thread failed', error)))
    worker.on('exit', (code) => this.stop(this.closing !== undefined
      ? new Error('the model session is closed')
      : new ModelFailedError(`its worker thread exited with code ${code}`)))
    // Idle, the worker must not keep the process alive; while a run is pending it must (see runOutputs).
    worker.unref()
  }

  static async create (onnxPath: string, spec: ModelSpec, options: SessionOptions): Promise<ModelSession> {
    const worker = new Worker(new URL('./session-worker.js', import.meta.url), {
      workerData: {
        onnxPath,
        options: {
          intraOpNumThreads: options.intraOpThreads,
          interOpNumThreads: options.interOpThreads,
          graphOptimizationLevel: options.graphOptimization,
          executionProviders: ['cpu']
        }
      }
    })
    const ready = await new Promise<WorkerMessage>((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`onnxruntime worker exited (code ${code}) while loading ${onnxPath}`))
      worker.once('error', reject).once('exit', onExit).once('message', (message: WorkerMessage) => {
        // only these two: the Worker keeps internal listeners of its own, so removeAllListeners would break it
        worker.off('error', reject).off('exit', onExit)
        resolve(message)
      })
    })
    if (ready.type !== 'ready') {
      await worker.terminate()
      throw new Error(ready.type === 'failed' ? ready.message : `unexpected message from the onnxruntime worker: ${ready.type}`)
    }
    return new ModelSession(worker, spec, ready.outputNames)
  }

  /** Why the worker stopped, if it crashed or exited on its own (not after `close`): every later run fails with it. */
  get failure (): ModelFailedError | undefined {
    return this.stopped instanceof ModelFailedError ? this.stopped : undefined
  }

  /** The first output the model declares: what the service reads. */
  get outputName (): string {
    return this.outputNames[0]
  }

  /** Whether the model declares a `cam` output (read with the logits by `run`, from the same inference). */
  get hasCam (): boolean {
    return this.outputName !== CAM_OUTPUT && this.outputNames.includes(CAM_OUTPUT)
  }

  /**
   * Runs model-size pixels (one uint8 image each) as one batch; returns the first output, one row per image, and
   * the `cam` output when the model has one: the network computes it on the way to its logits anyway, so asking
   * for it costs only its transfer (2 x 14 x 14 floats per image for the shipped model).
   */
  async run (images: readonly Uint8Array[]): Promise<SessionRun<BatchOutputs>> {
    const names = this.hasCam ? [this.outputName, CAM_OUTPUT] : [this.outputName]
    const { outputs, preprocessMs } = await this.runOutputs(images, names)
    const { values } = outputs[this.outputName]
    return { outputs: { values, width: values.length / images.length, cam: outputs[CAM_OUTPUT] }, preprocessMs }
  }

  /**
   * Like `run`, but returns every requested output with its shape: evaluation reads the class activation
   * maps (`cam`) next to the logits from the same single inference.
   */
  async runOutputs (images: readonly Uint8Array[], names: readonly string[]): Promise<SessionRun<Record<string, SessionOutput>>> {
    if (this.stopped !== undefined) throw this.stopped
    const { width, height, channels, layout } = this.spec.input
    const size = width * height * channels
    const dims = layout === 'NCHW' ? [images.length, channels, height, width] : [images.length, height, width, channels]
    const started = performance.now()
    const input = this.batchBuffer(images.length * size)
    images.forEach((image, i) => toTensorData(image, this.spec, input.subarray(i * size, (i + 1) * size)))
    const preprocessMs = performance.now() - started
    const id = this.nextId++
    const outputs = await new Promise<Record<string, SessionOutput>>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.ref()
      // moved, not copied: the worker sends the buffer back with the result (see batchBuffer)
      this.worker.postMessage({ type: 'run', id, input, dims, names: [...names] }, [input.buffer as ArrayBuffer])
    })
    return { outputs, preprocessMs }
  }

  /** Keeps a buffer back from the worker unless enough are kept or it is smaller than the largest batch so far. */
  private keepSpare (buffer: ArrayBuffer): void {
    if (buffer.byteLength >= this.bufferBytes && this.spareBuffers.length < SPARE_BUFFERS) this.spareBuffers.push(buffer)
  }

  /** A Float32Array of `length` values, on a spare buffer that came back from the worker when one is big enough. */
  private batchBuffer (length: number): Float32Array {
    this.bufferBytes = Math.max(this.bufferBytes, length * Float32Array.BYTES_PER_ELEMENT)
    const spare = this.spareBuffers.findIndex((buffer) => buffer.byteLength >= length * Float32Array.BYTES_PER_ELEMENT)
    const buffer = spare === -1 ? new ArrayBuffer(this.bufferBytes) : this.spareBuffers.splice(spare, 1)[0]
    return new Float32Array(buffer, 0, length)
  }

  /** Waits for the runs already sent, then releases the session and ends the worker. */
  async close (): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.stopped !== undefined) { resolve(); return }
      this.worker.once('exit', () => resolve())
      this.worker.ref()
      this.worker.postMessage({ type: 'close' })
    })
    await this.closing
  }

  private stop (reason: Error): void {
    this.stopped ??= reason
    for (const run of this.pending.values()) run.reject(reason)
    this.pending.clear()
  }
}
