import { performance } from 'node:perf_hooks'

interface Pending<T> {
  item: T
  resolve: () => void
  reject: (error: unknown) => void
}

export interface GroupWriterOptions {
  /** The most items one write takes. */
  maxBatch: number
  /**
   * Gathering window, ms (0: none). While items arrive on average less than a window apart (so at least one more is
   * expected within it), a group waits up to this long for more, or until it is full, before it is written. A
   * statement's fixed cost is most of a small record's cost (measured on PGlite: 0.8 ms of CPU for a group of one,
   * 0.3 ms per record in groups of three or more), so under load gathering cuts the database's CPU per record; an
   * item on a quiet service, or at a rate where waiting would not gather anything, is written at once.
   */
  windowMs?: number
}

/**
 * Group commit: items submitted while a write is running wait and then go to the database together, in one
 * statement, so under load the number of round trips and commits per record falls as the load rises; a lone
 * item is written at once (after the current event-loop turn, so items finished in the same turn share it).
 * `submit` resolves once the item's batch is committed and rejects with the batch's error.
 */
export class GroupWriter<T> {
  private queue: Array<Pending<T>> = []
  private running: Promise<void> | undefined
  /** Smoothed time between submissions, ms: how long the next item is expected to take to arrive. */
  private meanGapMs = Infinity
  private lastSubmitAt = -Infinity
  private closing = false
  private full: (() => void) | undefined
  private readonly maxBatch: number
  private readonly windowMs: number

  constructor (private readonly write: (items: T[]) => Promise<void>, options: GroupWriterOptions) {
    this.maxBatch = options.maxBatch
    this.windowMs = options.windowMs ?? 0
  }

  get pending (): number {
    return this.queue.length
  }

  async submit (item: T): Promise<void> {
    const now = performance.now()
    const gap = now - this.lastSubmitAt
    this.lastSubmitAt = now
    if (Number.isFinite(gap)) this.meanGapMs = Number.isFinite(this.meanGapMs) ? 0.75 * this.meanGapMs + 0.25 * gap : gap
    const done = new Promise<void>((resolve, reject) => this.queue.push({ item, resolve, reject }))
    if (this.queue.length >= this.maxBatch) this.full?.()
    this.running ??= this.run()
    await done
  }

  /** Writes what is queued without waiting out a gathering window; resolves once it is written (or has failed). */
  async drain (): Promise<void> {
    this.closing = true
    this.full?.()
    await this.running
  }

  private async run (): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    while (this.queue.length > 0) {
      await this.gather()
      const batch = this.queue.splice(0, this.maxBatch)
      try {
        await this.write(batch.map((p) => p.item))
        for (const p of batch) p.resolve()
      } catch (error) {
        for (const p of batch) p.reject(error)
      }
    }
    this.running = undefined
  }

  /** Waits out the gathering window while another item is expected within it and the group is not yet full. */
  private async gather (): Promise<void> {
    const expected = this.meanGapMs < this.windowMs
    if (!expected || this.closing || this.queue.length >= this.maxBatch) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.full = undefined; resolve() }, this.windowMs)
      this.full = () => { clearTimeout(timer); this.full = undefined; resolve() }
    })
  }
}
