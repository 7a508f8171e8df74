/**
 * Background work repeated until stopped, each kind by name: a run resolves to the delay before the next, and a run
 * that fails is retried after `failedMs`. Timers are unref'd (they hold no process open); stop() clears them, waits
 * for the runs under way and starts none after.
 */
export class Repeating {
  private readonly timers = new Map<string, NodeJS.Timeout>()
  private readonly running = new Map<string, Promise<void>>()
  private stopped = false

  constructor (private readonly failed: (name: string, error: unknown) => void) {}

  /** Runs `work` after `delayMs`, then again after the delay it resolves to, or `failedMs` after it failed. */
  start (name: string, delayMs: number, work: () => Promise<number>, failedMs: number): void {
    if (this.stopped) return
    this.timers.set(name, setTimeout(() => {
      this.running.set(name, work().then((nextMs) => this.start(name, nextMs, work, failedMs), (error: unknown) => {
        this.failed(name, error)
        this.start(name, failedMs, work, failedMs)
      }))
    }, delayMs).unref())
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const timer of this.timers.values()) clearTimeout(timer)
    await Promise.all(this.running.values())
  }
}
