import { Worker } from 'node:worker_threads'
import { ModelFailedError } from './errors.js'
import type { ModelSpec } from './model-spec.js'

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

type WorkerMessage =
  | { type: 'ready', outputNames: string[] }
  | { type: 'failed', message: string }
  | { type: 'result', id: number, outputs: Record<string, SessionOutput> }
  | { type: 'error', id: number, message: string }

interface PendingRun {
  resolve: (outputs: Record<string, SessionOutput>) => void
  reject: (error: Error) => void
}

/**
 * One onnxruntime InferenceSession, created once and reused for every call: recreating sessions leaks
 * memory in onnxruntime-node. onnxruntime-node's `run` computes synchronously on the calling thread, so the
 * session lives in a worker thread (session-worker.js): while the model runs, the main thread keeps parsing
 * uploads and starting decodes. Input and output names are read from the model, not assumed.
 */
export class ModelSession {
  private readonly pending = new Map<number, PendingRun>()
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
      if (message.type === 'result') run?.resolve(message.outputs)
      else run?.reject(new Error(message.message))
    })
    worker.on('error', (error) => this.stop(new ModelFailedError(`onnxruntime worker failed: ${error.message}`)))
    worker.on('exit', (code) => this.stop(this.closing !== undefined
      ? new Error('the model session is closed')
      : new ModelFailedError(`onnxruntime worker exited with code ${code}`)))
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

  /** Runs preprocessed images (one tensor each) as one batch; returns the first output, one row per image. */
  async run (images: readonly Float32Array[]): Promise<{ values: Float32Array, width: number }> {
    const { values } = (await this.runOutputs(images, [this.outputName]))[this.outputName]
    return { values, width: values.length / images.length }
  }

  /**
   * Like `run`, but returns every requested output with its shape: evaluation reads the class activation
   * maps (`cam`) next to the logits from the same single inference.
   */
  async runOutputs (images: readonly Float32Array[], names: readonly string[]): Promise<Record<string, SessionOutput>> {
    if (this.stopped !== undefined) throw this.stopped
    const { width, height, channels, layout } = this.spec.input
    const dims = layout === 'NCHW' ? [images.length, channels, height, width] : [images.length, height, width, channels]
    const input = new Float32Array(images.reduce((n, image) => n + image.length, 0))
    images.reduce((offset, image) => { input.set(image, offset); return offset + image.length }, 0)
    const id = this.nextId++
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.ref()
      // the batch buffer was built here and is never read again, so it is moved to the worker rather than copied
      this.worker.postMessage({ type: 'run', id, input, dims, names: [...names] }, [input.buffer])
    })
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
