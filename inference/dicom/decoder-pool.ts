import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { ServiceError } from '../errors.js'
import type { DecodedImage } from '../image.js'
import type { DicomInstance } from './dataset.js'
import type { DecodedInstance, DicomDecodeOptions, DicomInstanceDecoder } from './decode-dicom.js'
import { CorruptDicomError, DecodeTimeoutError, DecoderBusyError, DicomTooLargeError } from './errors.js'

export interface DecoderPoolOptions {
  /** Decoder threads, started on first use. */
  workers: number
  /** Files allowed to wait for a free thread; one more is refused with 503 DECODER_BUSY and Retry-After. */
  maxQueue: number
  /** A file still decoding after this long is abandoned (422 DECODE_TIMEOUT); its thread is stopped and replaced. */
  timeoutMs: number
  /**
   * A thread whose own memory (V8 heap plus WebAssembly memories and buffers, which never shrink while it lives)
   * is above this after a file is replaced by a fresh one, so that the memory is returned; its V8 heap is capped
   * at this size too.
   */
  maxWorkerMemoryBytes: number
}

/** Counters since the pool was created (for /metrics and the tests). */
export interface DecoderPoolStats {
  decoded: number
  timedOut: number
  recycled: number
  crashed: number
}

interface Task {
  bytes: Buffer
  options: DicomDecodeOptions
  resolve: (instance: DecodedInstance) => void
  reject: (error: Error) => void
}

type WorkerReply =
  | { ready: true }
  | { id: number, instance: DicomInstance & { frames: Array<{ image: Omit<DecodedImage, 'pixels'> & { pixels: Uint8Array }, slicePosition?: number }> }, memoryBytes: number }
  | { id: number, error: { code: string, statusCode: number, message: string } | { unexpected: string }, memoryBytes: number }

const MB = 1024 * 1024

/**
 * The upload's bytes as they go to a thread: shared memory (the service's uploads, plugins/external/multipart.ts)
 * is passed as is, without a copy; anything else is copied once into a buffer of its own, which is moved.
 */
function sendable (bytes: Buffer): { bytes: Uint8Array, transfer: ArrayBuffer[] } {
  if (bytes.buffer instanceof SharedArrayBuffer) return { bytes, transfer: [] }
  const own = new Uint8Array(bytes)
  return { bytes: own, transfer: [own.buffer] }
}

class DecoderThread {
  readonly worker: Worker
  readonly ready: Promise<void>
  task?: Task & { id: number, timer: NodeJS.Timeout, started: number }
  /** Its decoder is loaded: a thread that never got there is not replaced (that would only fail again). */
  started = false
  /** Set once the pool has let it go (timeout, crash, recycle, close): its late messages are ignored. */
  retired = false
  /** Resolves once a retired thread has stopped. */
  stopped: Promise<number> = Promise.resolve(0)

  constructor (maxWorkerMemoryBytes: number) {
    this.worker = new Worker(new URL('./decoder-worker.js', import.meta.url), {
      workerData: { maxMemoryBytes: maxWorkerMemoryBytes },
      resourceLimits: { maxOldGenerationSizeMb: Math.max(32, Math.ceil(maxWorkerMemoryBytes / MB)) }
    })
    this.worker.unref()
    this.ready = new Promise((resolve, reject) => {
      const onExit = (code: number): void => reject(new Error(`DICOM decoder thread exited (code ${code}) while starting`))
      this.worker.once('error', reject).once('exit', onExit).once('message', () => {
        this.worker.off('error', reject).off('exit', onExit)
        this.started = true
        resolve()
      })
    })
    this.ready.catch(() => {})
  }
}

/**
 * DICOM files are decoded here, in a few worker threads, never on the service's event loop: parsing, inflating,
 * codecs (WebAssembly) and windowing can take seconds on a hostile file, and WebAssembly memory never shrinks
 * while its thread lives. The pool bounds all three: how many files wait (`maxQueue`), how long one may take
 * (`timeoutMs`, then its thread is terminated and replaced) and how much memory a thread may keep
 * (`maxWorkerMemoryBytes`, then it is replaced after the file, and the process gets the memory back).
 * `decode` is a `DicomInstanceDecoder`: it runs exactly `decodeDicomInstance` (decode-dicom.ts), in a thread.
 */
export class DicomDecoderPool {
  private readonly threads = new Set<DecoderThread>()
  private readonly idle: DecoderThread[] = []
  private readonly queue: Task[] = []
  private nextId = 0
  private closed = false
  /** Mean decode time of recent files, for Retry-After. */
  private meanMs = 100
  readonly stats: DecoderPoolStats = { decoded: 0, timedOut: 0, recycled: 0, crashed: 0 }

  constructor (readonly options: DecoderPoolOptions) {
    for (const [name, min] of [['workers', 1], ['maxQueue', 0], ['timeoutMs', 1], ['maxWorkerMemoryBytes', 1]] as const) {
      const value = options[name]
      if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`)
    }
  }

  /** Files waiting for a thread. */
  get queued (): number {
    return this.queue.length
  }

  /** Threads alive (started lazily, replaced when stopped). */
  get size (): number {
    return this.threads.size
  }

  readonly decode: DicomInstanceDecoder = async (bytes, options) => await new Promise<DecodedInstance>((resolve, reject) => {
    if (this.closed) { reject(new Error('the DICOM decoder pool is closed')); return }
    const task: Task = { bytes, options, resolve, reject }
    const thread = this.idle.pop() ?? (this.threads.size < this.options.workers ? this.start() : undefined)
    if (thread !== undefined) { this.run(thread, task); return }
    if (this.queue.length >= this.options.maxQueue) {
      reject(new DecoderBusyError(this.options.maxQueue, this.retryAfterSeconds()))
      return
    }
    this.queue.push(task)
  })

  /** Refuses new files, fails the waiting ones, and stops every thread (running files fail too). */
  async close (): Promise<void> {
    this.closed = true
    for (const task of this.queue.splice(0)) task.reject(new Error('the DICOM decoder pool is closed'))
    const threads = [...this.threads]
    for (const thread of threads) this.retire(thread, new Error('the DICOM decoder pool is closed'))
    await Promise.all(threads.map(async (thread) => await thread.stopped))
  }

  private start (): DecoderThread {
    const thread = new DecoderThread(this.options.maxWorkerMemoryBytes)
    this.threads.add(thread)
    thread.worker.on('message', (reply: WorkerReply) => this.finished(thread, reply))
    const crashed = (refusal: Error): void => {
      if (thread.retired) return
      this.stats.crashed++
      this.retire(thread, refusal)
    }
    // ERR_WORKER_OUT_OF_MEMORY: the file needed more heap than a thread may have.
    thread.worker.on('error', (error: Error & { code?: string }) => crashed(error.code === 'ERR_WORKER_OUT_OF_MEMORY'
      ? new DicomTooLargeError('decoding it needs more memory than a decoder thread may use')
      : new CorruptDicomError('its decoder stopped on it')))
    thread.worker.on('exit', () => crashed(new CorruptDicomError('its decoder stopped on it')))
    return thread
  }

  private run (thread: DecoderThread, task: Task): void {
    const id = this.nextId++
    // A thread with a file keeps the process alive (a CLI run waits for it); an idle one does not.
    thread.worker.ref()
    thread.ready.then(() => {
      if (thread.retired) { this.schedule(task); return }
      const timer = setTimeout(() => {
        this.stats.timedOut++
        this.retire(thread, new DecodeTimeoutError(this.options.timeoutMs))
      }, this.options.timeoutMs)
      thread.task = { ...task, id, timer, started: performance.now() }
      const { bytes, transfer } = sendable(task.bytes)
      thread.worker.postMessage({ id, bytes, options: task.options }, transfer)
    }, (error: Error) => {
      this.threads.delete(thread)
      task.reject(error)
    })
  }

  /** Gives a task to a free or new thread, else back to the head of the queue. */
  private schedule (task: Task): void {
    const thread = this.idle.pop() ?? (!this.closed && this.threads.size < this.options.workers ? this.start() : undefined)
    if (thread !== undefined) this.run(thread, task)
    else if (this.closed) task.reject(new Error('the DICOM decoder pool is closed'))
    else this.queue.unshift(task)
  }

  private finished (thread: DecoderThread, reply: WorkerReply): void {
    const task = thread.task
    if ('ready' in reply || task === undefined || reply.id !== task.id || thread.retired) return
    clearTimeout(task.timer)
    thread.task = undefined
    thread.worker.unref()
    const ms = performance.now() - task.started
    this.meanMs = 0.8 * this.meanMs + 0.2 * ms
    if ('error' in reply) {
      const { error } = reply
      task.reject('unexpected' in error ? new Error(`DICOM decoder: ${error.unexpected}`) : new ServiceError(error.code, error.statusCode, error.message))
    } else {
      this.stats.decoded++
      const { instance } = reply
      task.resolve({
        ...instance,
        frames: instance.frames.map(({ image, ...frame }) => ({ ...frame, image: { ...image, pixels: Buffer.from(image.pixels.buffer, image.pixels.byteOffset, image.pixels.byteLength) } }))
      })
    }
    if (reply.memoryBytes > this.options.maxWorkerMemoryBytes) {
      this.stats.recycled++
      this.retire(thread)
      return
    }
    this.release(thread)
  }

  private release (thread: DecoderThread): void {
    const next = this.queue.shift()
    if (next !== undefined) this.run(thread, next)
    else this.idle.push(thread)
  }

  /**
   * Stops a thread; its running file, if any, fails with `reason`. A thread that had started is replaced at once,
   * so the pool keeps its size and the next file does not wait for a thread to start (one that never started is
   * not: a new one would only fail the same way).
   */
  private retire (thread: DecoderThread, reason?: Error): void {
    if (thread.retired) return
    thread.retired = true
    this.threads.delete(thread)
    const at = this.idle.indexOf(thread)
    if (at !== -1) this.idle.splice(at, 1)
    if (thread.task !== undefined) {
      clearTimeout(thread.task.timer)
      thread.task.reject(reason ?? new Error('the DICOM decoder thread was stopped'))
      thread.task = undefined
    }
    thread.stopped = thread.worker.terminate()
    if (thread.started && !this.closed && this.threads.size < this.options.workers) this.release(this.start())
  }

  /** Seconds for the queue ahead to drain at the recent decode time, at least 1. */
  private retryAfterSeconds (): number {
    return Math.max(1, Math.ceil((this.queue.length / this.options.workers + 1) * this.meanMs / 1000))
  }
}
