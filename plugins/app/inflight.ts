import fp from 'fastify-plugin'
import { InflightBudgetError, RequestTooLargeError } from '../../inference/errors.js'

/**
 * The bytes all requests together may hold in memory: request bodies as they arrive (multipart streams into it,
 * plugins/external/multipart.ts) and decoded images before they are decoded (`reserve`, inference/decode.ts).
 * Charged as they come, released in one place when the request's response closes, whatever happened to it
 * (answered, failed, aborted by the client).
 */
export class ByteBudget {
  private usedBytes = 0

  constructor (readonly limitBytes: number, private readonly retryAfterS: number) {}

  get used (): number {
    return this.usedBytes
  }

  /** What is left: the service reports overload on /health/ready when the largest upload would not fit. */
  get available (): number {
    return this.limitBytes - this.usedBytes
  }

  account (): InflightAccount {
    return new InflightAccount(this)
  }

  /** @internal Called by accounts only. */
  take (account: InflightAccount, bytes: number): void {
    if (account.held + bytes > this.limitBytes) throw new RequestTooLargeError(this.limitBytes)
    if (this.usedBytes + bytes > this.limitBytes) throw new InflightBudgetError(this.retryAfterS)
    this.usedBytes += bytes
  }

  /** @internal Called by accounts only. */
  give (bytes: number): void {
    this.usedBytes -= bytes
  }
}

/** One request's share of the budget. */
export class InflightAccount {
  private heldBytes = 0

  constructor (private readonly budget: ByteBudget) {}

  get held (): number {
    return this.heldBytes
  }

  /** Throws 503 INFLIGHT_BUDGET_FULL when others hold the rest, 413 REQUEST_TOO_LARGE when this request alone would not fit. */
  charge (bytes: number): void {
    this.budget.take(this, bytes)
    this.heldBytes += bytes
  }

  /** Gives everything back and says how much that was; safe to call more than once. */
  release (): number {
    const released = this.heldBytes
    this.budget.give(released)
    this.heldBytes = 0
    return released
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    inflight: ByteBudget
  }
  interface FastifyRequest {
    /** This request's share of the in-flight byte budget; set for every request that passed onRequest. */
    inflight: InflightAccount
  }
}

/** Released upload bytes after which the next collection is asked for (see `collectSoon`). */
const COLLECT_AFTER_BYTES = 64 * 1024 * 1024

export default fp(async (app) => {
  const budget = new ByteBudget(app.config.maxInflightBytes, app.config.pressure.retryAfterS)
  app.decorate('inflight', budget)
  app.decorateRequest('inflight', null as unknown as InflightAccount)

  // Released upload buffers are garbage until V8 collects them, and an idle process is not collected: after a burst
  // of 100 uploads of 19 MiB the service kept 1.4 GiB for minutes (bench/payloads.ts). With `--expose-gc` (bin/serve)
  // a collection follows a second after every 64 MiB released; without it (tests, CLI) nothing is forced.
  const collect = (globalThis as { gc?: () => void }).gc
  let released = 0
  let pending: NodeJS.Timeout | undefined
  const collectSoon = (bytes: number): void => {
    released += bytes
    if (collect === undefined || released < COLLECT_AFTER_BYTES || pending !== undefined) return
    pending = setTimeout(() => {
      pending = undefined
      released = 0
      collect()
    }, 1000).unref()
  }
  app.addHook('onClose', async () => clearTimeout(pending))

  app.addHook('onRequest', async (request, reply) => {
    const account = budget.account()
    request.inflight = account
    // 'close' fires once the response is finished or the connection is gone, whichever way the request ended.
    reply.raw.once('close', () => collectSoon(account.release()))
  })
}, { name: 'inflight', dependencies: ['config'] })
