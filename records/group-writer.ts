import { performance } from 'node:perf_hooks'
import { RecordStoreError } from './errors.js'

/**
 * The longest an item waits to be sent; one that has waited longer fails unwritten. A row is stamped (created_at)
 * just before it is submitted, so this, with the statement's own bound, bounds the time from a row's created_at to its
 * commit, which the FHIR push sweep's overlap covers (latestCommitMs in store.ts): a row committed later would never
 * be pushed. A healthy database keeps the wait to milliseconds; only a backlog behind a failing one (writes running
 * into DATABASE_TIMEOUT_MS, group after group) comes near it.
 */
export const MAX_QUEUED_MS = 300_000

interface Pending<T> {
  item: T
  /** performance.now() when it was submitted. */
  queuedAt: number
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * Group commit: items submitted while writes are running wait and then go to the database together, in one
 * statement, so under load the number of round trips and commits per record falls as the load rises; a lone
 * item is written at once (after the current event-loop turn, so items finished in the same turn share it).
 * Up to `maxInFlight` writes run at once (a server's pool commits them side by side, so an item need not wait for
 * the write before it to commit; one for a single connection). `submit` resolves once the item's batch is committed
 * and rejects with the batch's error, or unwritten once it has waited `maxWaitMs` to be sent.
 */
export class GroupWriter<T> {
  private queue: Array<Pending<T>> = []
  private inFlight = 0
  private scheduled = false
  private idle: Array<() => void> = []

  /**
   * `isItemFault`: whether an error is about one item's data (a value the database refuses), not the database: a
   * group failing so is written again item by item, so that only the faulty item fails, not the others with it.
   */
  constructor (
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxBatch: number,
    private readonly maxInFlight = 1,
    private readonly isItemFault: (error: unknown) => boolean = () => false,
    private readonly maxWaitMs = MAX_QUEUED_MS
  ) {}

  get pending (): number {
    return this.queue.length
  }

  async submit (item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.queue.push({ item, queuedAt: performance.now(), resolve, reject }))
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(() => { this.scheduled = false; this.pump() })
    }
    await done
  }

  /** Resolves once everything submitted so far has been written (or has failed). */
  async drain (): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  /** The items of `batch` still within maxWaitMs of their submit; the others fail here, unwritten. */
  private sendable (batch: Array<Pending<T>>): Array<Pending<T>> {
    const now = performance.now()
    return batch.filter((p) => {
      if (now - p.queuedAt <= this.maxWaitMs) return true
      p.reject(new RecordStoreError(`the write waited more than ${this.maxWaitMs / 1000} s to be sent to the database`))
      return false
    })
  }

  private async writeGroup (batch: Array<Pending<T>>): Promise<void> {
    try {
      await this.write(batch.map((p) => p.item))
    } catch (error) {
      if (batch.length === 1 || !this.isItemFault(error)) {
        for (const p of batch) p.reject(error)
        return
      }
      // one after the other, each sent only while within maxWaitMs, as the group was
      for (const p of batch) if (this.sendable([p]).length === 1) await this.write([p.item]).then(p.resolve, p.reject)
      return
    }
    for (const p of batch) p.resolve()
  }

  private pump (): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.sendable(this.queue.splice(0, this.maxBatch))
      if (batch.length === 0) continue
      this.inFlight++
      this.writeGroup(batch).finally(() => {
        this.inFlight--
        this.pump()
      }).catch(() => {})
    }
    if (this.queue.length === 0 && this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve()
  }
}
