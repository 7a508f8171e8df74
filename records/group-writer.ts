interface Pending<T> {
  item: T
  resolve: () => void
  reject: (error: unknown) => void
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

  constructor (
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxBatch: number
  ) {}

  get pending (): number {
    return this.queue.length
  }

  async submit (item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.queue.push({ item, resolve, reject }))
    this.running ??= this.run()
    await done
  }

  /** Resolves once everything submitted so far has been written (or has failed). */
  async drain (): Promise<void> {
    await this.running
  }

  private async run (): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    while (this.queue.length > 0) {
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
}
