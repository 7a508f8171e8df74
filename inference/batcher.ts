import { performance } from 'node:perf_hooks'
import { RetryLaterError } from './errors.js'

export interface BatchingOptions {
  /** Largest number of items run in one call. */
  maxBatchSize: number
  /**
   * How long the first item of a batch may wait for company, in microseconds. 0 collects only what arrives
   * in the same turn of the event loop; below 1000 the wait is one timer tick (Node timers have 1 ms resolution).
   */
  maxDelayUs: number
  /** Items allowed to wait (the running batch not counted); one more is refused with QueueFullError. */
  maxQueue: number
}

/** What one item got back, and what it went through to get it. */
export interface Batched<O> {
  result: O
  /** Milliseconds between `submit` and the start of the batch that carried the item. */
  waitMs: number
  /** Milliseconds the batch run took. */
  runMs: number
  batchSize: number
}

/** `retryAfterSeconds`: when a retry has a fair chance; the error handler sends it as `Retry-After`. */
export class QueueFullError extends RetryLaterError {
  constructor (maxQueue: number, retryAfterSeconds: number) {
    super('QUEUE_FULL', `The inference queue is full (${maxQueue} waiting); retry after ${retryAfterSeconds} s.`, retryAfterSeconds)
  }
}

interface Pending<I, O> {
  item: I
  submittedAt: number
  resolve: (value: Batched<O>) => void
  reject: (error: unknown) => void
}

/**
 * Dynamic micro-batching: items submitted close together are handed to `run` as one array. One batch runs
 * at a time (onnxruntime already uses every core for one call), and whatever queued up meanwhile forms the
 * next batch at once, so under load batches grow by themselves and a lone item only waits `maxDelayUs`.
 * The queue is bounded: when it is full, `submit` fails immediately instead of letting latency grow.
 */
export class MicroBatcher<I, O> {
  private readonly queue: Array<Pending<I, O>> = []
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined
  private running: Promise<void> | undefined
  private lastRunMs = 0

  constructor (
    private readonly run: (items: I[]) => Promise<O[]>,
    readonly options: BatchingOptions
  ) {
    for (const [name, min] of [['maxBatchSize', 1], ['maxDelayUs', 0], ['maxQueue', 1]] as const) {
      const value = options[name]
      if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`)
    }
  }

  /** Items waiting for a batch (not counting the batch being run). */
  get queued (): number {
    return this.queue.length
  }

  submit (item: I): Promise<Batched<O>> {
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(new QueueFullError(this.options.maxQueue, this.retryAfterSeconds()))
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ item, submittedAt: performance.now(), resolve, reject })
      this.schedule()
    })
  }

  /** Resolves once nothing is queued or running (used before the model behind `run` is released). */
  async drain (): Promise<void> {
    while (this.running !== undefined || this.queue.length > 0) {
      this.flush()
      await this.running
    }
  }

  private schedule (): void {
    if (this.running !== undefined) return // the running batch starts the next one when it ends
    if (this.queue.length >= this.options.maxBatchSize) {
      this.flush()
    } else if (this.timer === undefined) {
      const flush = (): void => { this.timer = undefined; this.flush() }
      this.timer = this.options.maxDelayUs === 0 ? setImmediate(flush) : setTimeout(flush, this.options.maxDelayUs / 1000)
    }
  }

  private flush (): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer as NodeJS.Timeout)
      clearImmediate(this.timer as NodeJS.Immediate)
      this.timer = undefined
    }
    if (this.running !== undefined || this.queue.length === 0) return
    const batch = this.queue.splice(0, this.options.maxBatchSize)
    this.running = this.runBatch(batch).finally(() => {
      this.running = undefined
      // Items that arrived during the run have waited at least as long as the run: no further delay.
      if (this.queue.length > 0) this.flush()
    })
  }

  private async runBatch (batch: Array<Pending<I, O>>): Promise<void> {
    const started = performance.now()
    try {
      const results = await this.run(batch.map((pending) => pending.item))
      if (results.length !== batch.length) throw new Error(`batch of ${batch.length} returned ${results.length} results`)
      const runMs = performance.now() - started
      this.lastRunMs = runMs
      batch.forEach((pending, i) => pending.resolve({
        result: results[i], waitMs: started - pending.submittedAt, runMs, batchSize: batch.length
      }))
    } catch (error) {
      for (const pending of batch) pending.reject(error)
    }
  }

  /** Time to work through a full queue at the last observed batch duration, in whole seconds (at least 1). */
  private retryAfterSeconds (): number {
    const batchesAhead = Math.ceil(this.options.maxQueue / this.options.maxBatchSize) + 1
    return Math.max(1, Math.ceil(batchesAhead * this.lastRunMs / 1000))
  }
}
