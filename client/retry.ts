/**
 * Waiting for Retry-After. The service answers 429 RATE_LIMITED, and 503 with Retry-After (QUEUE_FULL,
 * OVERLOADED), before it classifies anything, so sending the same request again later is safe; a 503 without
 * Retry-After (MODEL_FAILED, SHUTTING_DOWN) is not retried: it will not get better here by waiting.
 * No Node-only imports: a browser frontend uses this file as it is.
 */
export interface RetryPolicy {
  /** Tries in all, the first included; 1 never retries. */
  maxTries: number
  /** The longest wait for one Retry-After, in ms; an answer asking for longer is returned at once. */
  maxWaitMs: number
  /** Told before each wait, e.g. to show a user why nothing moves. */
  onRetry?: (event: RetryEvent) => void
}

export interface RetryEvent {
  status: number
  waitMs: number
  /** The try about to be made after the wait (2 for the first retry). */
  nextTry: number
  maxTries: number
}

/** Five tries, at most a minute's wait each: a fixed rate-limit window is at most RATE_LIMIT_WINDOW_MS long. */
export const DEFAULT_RETRY: RetryPolicy = { maxTries: 5, maxWaitMs: 60_000 }

/** The defaults with what is given over them; a policy that could retry forever is refused. */
export function retryPolicy (given: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy = {
    maxTries: given.maxTries ?? DEFAULT_RETRY.maxTries,
    maxWaitMs: given.maxWaitMs ?? DEFAULT_RETRY.maxWaitMs,
    onRetry: given.onRetry
  }
  if (!Number.isInteger(policy.maxTries) || policy.maxTries < 1) throw new RangeError(`retry.maxTries must be an integer >= 1, not ${policy.maxTries}`)
  if (!(policy.maxWaitMs >= 0)) throw new RangeError(`retry.maxWaitMs must be >= 0, not ${policy.maxWaitMs}`)
  return policy
}

/** A 429 without Retry-After (a gateway's, not the service's) is retried after this long. */
const RATE_LIMITED_FALLBACK_MS = 1_000

/** Retry-After in ms: delay-seconds or an HTTP-date (RFC 9110, 10.2.3); undefined when absent or unreadable. */
export function retryAfterMs (response: Response, now = Date.now()): number | undefined {
  const value = response.headers.get('retry-after')?.trim()
  if (value === undefined || value === '') return undefined
  if (/^[0-9]+$/.test(value)) return Number(value) * 1_000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** How long to wait before sending again, or undefined when this answer is final. */
function waitBeforeRetry (response: Response): number | undefined {
  if (response.status === 429) return retryAfterMs(response) ?? RATE_LIMITED_FALLBACK_MS
  if (response.status === 503) return retryAfterMs(response)
  return undefined
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const abort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', abort)
      resolve()
    }, ms)
    signal.addEventListener('abort', abort, { once: true })
  })
}

/**
 * A fetch that sends a request again after the Retry-After of a 429 or 503, up to `maxTries` tries in all;
 * the last answer (success or the typed error) is returned as it is. Each try sends a copy of the request,
 * the original body is kept for the next one. An abort of the request's signal ends a wait at once.
 */
export function retryingFetch (send: (request: Request) => Promise<Response>, policy: RetryPolicy): (request: Request) => Promise<Response> {
  return async (request) => {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= policy.maxTries
      const response = await send(last ? request : request.clone())
      const waitMs = last ? undefined : waitBeforeRetry(response)
      if (waitMs === undefined || waitMs > policy.maxWaitMs) return response
      policy.onRetry?.({ status: response.status, waitMs, nextTry: attempt + 1, maxTries: policy.maxTries })
      // The refused answer's body is not needed; reading it to the end frees the connection for the retry.
      await response.arrayBuffer()
      await sleep(waitMs, request.signal)
    }
  }
}
