interface Pending<T> {
  item: T
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * Group commit: items submitted while writes are running wait and then go to the database together, in one
 * statement, so under load the number of round trips and commits per record falls as the load rises; a lone
 * item is written at once (after the current event-loop turn, so items finished in the same turn share it).
 * Up to `maxInFlight` writes run at once (a server's pool commits them side by side, so an item need not wait for
 * the write before it to commit; one for a single connection). `submit` resolves once the item's batch is committed
 * and rejects with the batch's error.
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
    private readonly isItemFault: (error: unknown) => boolean = () => false
  ) {}

  get pending (): number {
    return this.queue.length
  }

  async submit (item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.queue.push({ item, resolve, reject }))
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

  private async writeGroup (batch: Array<Pending<T>>): Promise<void> {
    try {
      await this.write(batch.map((p) => p.item))
    } catch (error) {
      if (batch.length === 1 || !this.isItemFault(error)) {
        for (const p of batch) p.reject(error)
        return
      }
      for (const p of batch) await this.write([p.item]).then(p.resolve, p.reject)
      return
    }
    for (const p of batch) p.resolve()
  }

  private pump (): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.queue.splice(0, this.maxBatch)
      this.inFlight++
      this.writeGroup(batch).finally(() => {
        this.inFlight--
        this.pump()
        if (this.queue.length === 0 && this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve()
      }).catch(() => {})
    }
  }
}
