import fp from 'fastify-plugin'
import { InflightBudgetError, RequestTooLargeError, SlowUploadsFullError } from '../../inference/errors.js'
import { RequestTimeoutError } from './errors.js'

/**
 * The bytes all requests together may hold in memory: request bodies as they arrive (multipart streams into it,
 * plugins/external/multipart.ts) and decoded images before they are decoded (`reserve`, inference/decode.ts).
 * Charged as they come; a file's decoded images are given back once it is classified (`decodedImages`), everything
 * else in one place when the request's response closes, whatever happened to it (answered, failed, aborted by the
 * client). Uploads still arriving after SLOW_UPLOAD_AFTER_MS are slow and together hold at most `slowLimitBytes`:
 * what they hold is held until their body ends, so the rest is kept for the others.
 */
export class ByteBudget {
  private usedBytes = 0
  private slowBytes = 0

  constructor (readonly limitBytes: number, private readonly retryAfterS: number, readonly slowLimitBytes = limitBytes) {}

  get used (): number {
    return this.usedBytes
  }

  /** Held by slow uploads, part of `used`. */
  get slow (): number {
    return this.slowBytes
  }

  /** What is left: the service reports overload on /health/ready when the largest upload would not fit. */
  get available (): number {
    return this.limitBytes - this.usedBytes
  }

  account (): InflightAccount {
    return new InflightAccount(this)
  }

  /** Whether `bytes` more would fit beside what all requests hold. */
  fits (bytes: number): boolean {
    return this.usedBytes + bytes <= this.limitBytes
  }

  /** @internal Called by accounts only. */
  take (account: InflightAccount, bytes: number): void {
    if (account.held + bytes > this.limitBytes) throw new RequestTooLargeError(this.limitBytes)
    if (this.usedBytes + bytes > this.limitBytes) throw new InflightBudgetError(this.retryAfterS)
    if (account.slow) this.checkSlow(account.held + bytes, bytes)
    this.usedBytes += bytes
    if (account.slow) this.slowBytes += bytes
  }

  /** @internal Called by accounts only: `bytes` held by `account` become slow (true) or not (false). */
  move (bytes: number, slow: boolean): void {
    if (slow) this.checkSlow(bytes, bytes)
    this.slowBytes += slow ? bytes : -bytes
  }

  /** A slow request that would hold `requestBytes` in all, `addedBytes` of them new to the slow share. */
  private checkSlow (requestBytes: number, addedBytes: number): void {
    // Alone over the share, it would be refused on every retry: 413, not 503.
    if (requestBytes > this.slowLimitBytes) throw new RequestTooLargeError(this.slowLimitBytes, true)
    if (this.slowBytes + addedBytes > this.slowLimitBytes) throw new SlowUploadsFullError(this.retryAfterS)
  }

  /** @internal Called by accounts only. */
  give (account: InflightAccount, bytes: number): void {
    this.usedBytes -= bytes
    if (account.slow) this.slowBytes -= bytes
  }
}

/** One file's decoded images, charged to its request's share while the file is classified (`InflightAccount.decodedImages`). */
export interface DecodedCharge {
  /** Charges `bytes` more, before they are decoded or, `held`, as they come back decoded (DecodeOptions.reserve). */
  reserve: (bytes: number, held?: boolean) => Promise<void>
  /** Gives back all this file charged: it is classified, and its decoded pixels are no longer held. */
  giveBack: () => void
}

/** One request's share of the budget. */
export class InflightAccount {
  private heldBytes = 0
  private slowUpload = false
  private readonly refusal = new AbortController()
  private receiving = 0
  /** Of `held`, the decoded images of this request's files being classified. */
  private decodingBytes = 0
  /** Files waiting for another file's decoded images to be given back. */
  private readonly waiting: Array<() => void> = []

  constructor (private readonly budget: ByteBudget) {}

  get held (): number {
    return this.heldBytes
  }

  /** Whether this request's upload is slow (still arriving after SLOW_UPLOAD_AFTER_MS). */
  get slow (): boolean {
    return this.slowUpload
  }

  /** Whether a body (or one multipart part) of this request is being read through `receive`. */
  get reading (): boolean {
    return this.receiving > 0
  }

  /**
   * Throws 503 INFLIGHT_BUDGET_FULL when others hold the rest, 413 REQUEST_TOO_LARGE when this request alone would not
   * fit, 503 SLOW_UPLOADS_FULL when it is slow and other slow uploads hold their share.
   */
  charge (bytes: number): void {
    this.refusal.signal.throwIfAborted()
    this.budget.take(this, bytes)
    this.heldBytes += bytes
  }

  /**
   * One file's decoded images, charged as they are decoded and given back once the file is classified: a request of
   * several files (POST /predict/batch, STOW-RS) holds its body and the images of the files being classified, not
   * every file's image until its response closes. A file's first image that the budget cannot take while other files
   * of this request hold theirs waits for them to be given back, and is then charged (or refused as any charge is):
   * files that each fit beside the body are classified one after another, never refused for their siblings. Only a
   * file holding nothing waits, so two files never wait for each other; and never with its pixels decoded already
   * (`held`: a DICOM file's frames, which would be memory outside the budget while it waited), charged or refused at once.
   */
  decodedImages (): DecodedCharge {
    let own = 0
    return {
      reserve: async (bytes: number, held = false) => {
        while (!held && own === 0 && this.decodingBytes > 0 && !this.refusal.signal.aborted && !this.budget.fits(bytes)) {
          await new Promise<void>((resolve) => this.waiting.push(resolve))
        }
        this.charge(bytes)
        own += bytes
        this.decodingBytes += bytes
      },
      giveBack: () => {
        // Once the request is released it holds nothing: what its files charged was given back with the rest.
        const given = Math.min(own, this.heldBytes)
        this.budget.give(this, given)
        this.heldBytes -= given
        this.decodingBytes -= own
        own = 0
        this.wakeWaiting()
      }
    }
  }

  private wakeWaiting (): void {
    for (const wake of this.waiting.splice(0)) wake()
  }

  /**
   * The chunks of a body as they arrive, each charged before it is handed on. Refused as a slow upload (`turnSlow`),
   * it ends with that error at once, not at the next chunk: a client that has stopped sending is answered too.
   */
  async * receive (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const { signal } = this.refusal
    signal.throwIfAborted()
    let refuse = (): void => {}
    const refused = new Promise<never>((_resolve, reject) => { refuse = () => reject(signal.reason) })
    refused.catch(() => {})
    signal.addEventListener('abort', refuse, { once: true })
    const chunks = body[Symbol.asyncIterator]()
    this.receiving++
    try {
      for (let next = await Promise.race([chunks.next(), refused]); next.done !== true; next = await Promise.race([chunks.next(), refused])) {
        this.charge(next.value.length)
        yield next.value
      }
    } finally {
      this.receiving--
      signal.removeEventListener('abort', refuse)
      // As `for await` does, except after the refusal: a read is still pending then, and the answer needs the socket.
      if (!signal.aborted) await chunks.return?.()
    }
  }

  /**
   * The upload is still arriving SLOW_UPLOAD_AFTER_MS after it began: what it holds, and what it charges until its body
   * ends, counts toward the slow uploads' share. When that share cannot take it, the request is refused (`refused`).
   */
  turnSlow (): boolean {
    try {
      this.budget.move(this.heldBytes, true)
      this.slowUpload = true
      return true
    } catch (error) {
      this.refusal.abort(error)
      return false
    }
  }

  /** The body has arrived: what is charged from now on (decoded images) is not a slow upload's. */
  arrived (): void {
    if (!this.slowUpload) return
    this.budget.move(this.heldBytes, false)
    this.slowUpload = false
  }

  /**
   * Gives everything back and says how much that was; safe to call more than once. The account is closed: work that
   * still runs for a request whose response has closed (its client hung up, or the deadline answered 408 while its
   * image was being decoded) is refused its next charge, with the 408 its caller can no longer receive. Before, such
   * a charge was taken and never given back, and the budget shrank for good: 40 clients that sent a slice and hung up
   * left 23 decoded images of 147,456 bytes charged; three 150-frame DICOM uploads answered 408 left 117,964,800.
   */
  release (): number {
    const released = this.heldBytes
    this.budget.give(this, released)
    this.heldBytes = 0
    if (!this.refusal.signal.aborted) this.refusal.abort(new RequestTimeoutError('The request ended before its work did.'))
    this.wakeWaiting()
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
  const { afterMs: slowAfterMs, maxBytes: slowMaxBytes } = app.config.slowUploads
  const budget = new ByteBudget(app.config.maxInflightBytes, app.config.pressure.retryAfterS, slowMaxBytes)
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
    // Only a body can arrive slowly. A request without one (GET /…/overlay.png decoding an upload) never reads its
    // stream, so 'end' would come only after the answer: it was judged a slow upload after SLOW_UPLOAD_AFTER_MS.
    const withBody = request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0
    let slow: NodeJS.Timeout | undefined
    if (withBody) {
      let ended = false
      request.raw.once('end', () => { ended = true; account.arrived() })
      slow = setTimeout(() => {
        // `complete`: the whole message has been received, whether or not it has been read yet; `ended`: it has been
        // read (an injected request has no `complete`). Refused while its body is read, the reader ends with the
        // typed error, which is answered; between two multipart parts nothing reads it, and the connection is closed.
        if (!request.raw.complete && !ended && !account.turnSlow() && !account.reading) request.raw.destroy()
      }, slowAfterMs).unref()
    }
    // 'close' fires once the response is finished or the connection is gone, whichever way the request ended.
    reply.raw.once('close', () => {
      clearTimeout(slow)
      collectSoon(account.release())
    })
  })
}, { name: 'inflight', dependencies: ['config'] })
