import fp from 'fastify-plugin'
import { ServiceError } from '../../inference/errors.js'

/** /health/live's refusal: the orchestrator should restart this process. */
export class NotLiveError extends ServiceError {
  constructor (reason: string) {
    super('NOT_LIVE', 503, `This instance cannot recover on its own (${reason}); restart it.`)
  }
}

const SAMPLE_EVERY_MS = 1_000

const GUARDED = Symbol.for('kidney-stone.memory-usage-guarded')

/**
 * process.memoryUsage() reads /proc/self/stat for the RSS, which takes a file descriptor: with every descriptor in use
 * (connections up to the process's limit, `ulimit -n`) it throws EMFILE. This watch and @fastify/under-pressure call
 * it from timers, where the throw ended the process: 120 idle connections to the service started with `ulimit -n 200`
 * took it down. Wrapped once per process: a reading that fails for want of a descriptor repeats the last good one
 * (memory does not jump in the second it takes connections to close again); any other failure still throws.
 */
export function guardMemoryUsage (): void {
  const original = process.memoryUsage as typeof process.memoryUsage & { [GUARDED]?: true }
  if (original[GUARDED] === true) return
  const outOfDescriptors = (error: unknown): boolean => ['EMFILE', 'ENFILE'].includes((error as NodeJS.ErrnoException).code ?? '')
  let last = original()
  const read = (): NodeJS.MemoryUsage => {
    try {
      last = original()
    } catch (error) {
      if (!outOfDescriptors(error)) throw error
    }
    return last
  }
  const rss = (): number => {
    try {
      last = { ...last, rss: original.rss() }
    } catch (error) {
      if (!outOfDescriptors(error)) throw error
    }
    return last.rss
  }
  process.memoryUsage = Object.assign(read, { rss, [GUARDED]: true as const })
}

/**
 * Whether the process can still recover. Memory above the pressure limits sheds every request (503 OVERLOADED,
 * plugins/external/under-pressure.ts); if it stays there for LIVENESS_MEMORY_GRACE_S the instance is out of service
 * for good (memory a native library will not give back), and liveness fails so that an orchestrator restarts it.
 * Sampled on a timer, not per request, so an idle instance notices too.
 */
export class LivenessWatch {
  private overSinceMs: number | undefined
  private readonly timer: NodeJS.Timeout
  /** Parts of the process that only a restart brings back, each saying why when it is gone (`watch`). */
  private readonly parts: Array<() => string | undefined> = []

  constructor (
    private readonly limits: { maxRssBytes: number, maxHeapUsedBytes: number },
    private readonly graceMs: number,
    private readonly memory: () => { rss: number, heapUsed: number } = process.memoryUsage
  ) {
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS).unref()
  }

  sample (now = Date.now()): void {
    const { rss, heapUsed } = this.memory()
    const over = (this.limits.maxRssBytes > 0 && rss > this.limits.maxRssBytes) ||
      (this.limits.maxHeapUsedBytes > 0 && heapUsed > this.limits.maxHeapUsedBytes)
    this.overSinceMs = over ? (this.overSinceMs ?? now) : undefined
  }

  /** A part of the process that only a restart brings back: `gone` says why once it is gone, else undefined. */
  watch (gone: () => string | undefined): void {
    this.parts.push(gone)
  }

  /** Why the process should be restarted, if it should. */
  failure (now = Date.now()): NotLiveError | undefined {
    for (const gone of this.parts) {
      const reason = gone()
      if (reason !== undefined) return new NotLiveError(reason)
    }
    if (this.graceMs === 0 || this.overSinceMs === undefined || now - this.overSinceMs < this.graceMs) return undefined
    return new NotLiveError(`memory above its limit for ${Math.round((now - this.overSinceMs) / 1000)} s`)
  }

  stop (): void {
    clearInterval(this.timer)
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    liveness: LivenessWatch
  }
}

export default fp(async (app) => {
  guardMemoryUsage()
  const watch = new LivenessWatch(app.config.pressure, app.config.livenessMemoryGraceS * 1000)
  app.decorate('liveness', watch)
  app.addHook('onClose', async () => watch.stop())
}, { name: 'liveness', dependencies: ['config'] })
