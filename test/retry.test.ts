import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import type { AppOptions } from '../app.js'
import type { PressureLimits } from '../plugins/app/config.js'
import { createKidneyStoneClient, predictSlice, retryAfterMs, type RetryEvent, type RetryPolicy } from '../client/index.js'
import { DEFAULT_RETRY, retryPolicy } from '../client/retry.js'
import { build, ctKidneyFiles, SHARED } from './helper.js'

const DICOM = join(SHARED, 'data/dicom/ct1-unc-explicit-little-endian.dcm')
const BIN = fileURLToPath(new URL('../bin/kidney-stone.js', import.meta.url))

/** The real service on 127.0.0.1, port 0; its base URL. */
async function listening (t: Test, config: AppOptions['config']): Promise<string> {
  const app = await build(t, { config })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/** A client on the real fetch that notes every answer's status (each try) and every wait it announced. */
function observedClient (base: string, retry: Partial<RetryPolicy>): { client: ReturnType<typeof createKidneyStoneClient>, statuses: number[], waits: RetryEvent[] } {
  const statuses: number[] = []
  const waits: RetryEvent[] = []
  const client = createKidneyStoneClient(base, {}, {
    fetch: async (request) => {
      const response = await fetch(request)
      statuses.push(response.status)
      return response
    },
    retry: { ...retry, onRetry: (event) => waits.push(event) }
  })
  return { client, statuses, waits }
}

async function cli (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args])
    return { code: 0, stdout, stderr }
  } catch (error) {
    return error as { code: number, stdout: string, stderr: string }
  }
}

const slice = async (): Promise<{ name: string, bytes: Buffer }> => ({ name: 'slice.dcm', bytes: await readFile(DICOM) })

t.test('429: the client waits for Retry-After and sends the upload again, which then succeeds', async (t) => {
  const base = await listening(t, { rateLimit: { max: 1, windowMs: 2_000 } })
  const { client, statuses, waits } = observedClient(base, { maxTries: 3, maxWaitMs: 5_000 })
  t.equal((await client.GET('/model')).response.status, 200, 'the one request of this window')
  const { data, response } = await predictSlice(client, await slice())
  t.equal(response.status, 200)
  t.ok(['Normal', 'Stone'].includes(data?.prediction ?? ''), 'the retried upload was classified')
  t.same(statuses, [200, 429, 200], 'refused once, then sent again')
  t.equal(waits.length, 1)
  t.match(waits[0], { status: 429, nextTry: 2, maxTries: 3 })
  t.ok(waits[0].waitMs > 0 && waits[0].waitMs <= 2_000, 'the wait is the Retry-After the service gave (seconds left in the window)')
})

t.test('a Retry-After longer than maxWaitMs is not waited for: the typed 429 comes back at once', async (t) => {
  const base = await listening(t, { rateLimit: { max: 1, windowMs: 60_000 } })
  const { client, statuses, waits } = observedClient(base, { maxTries: 5, maxWaitMs: 5_000 })
  await client.GET('/model')
  const { error, response } = await predictSlice(client, await slice())
  t.equal(response.status, 429)
  t.equal(error?.code, 'RATE_LIMITED')
  t.same(statuses, [200, 429], 'no second try')
  t.same(waits, [])
})

const ALWAYS_OVERLOADED: PressureLimits = { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 1, maxRssBytes: 0, retryAfterS: 1 }

/** Under-pressure samples the heap once per second: wait until the service sheds (a plain fetch, no retries). */
async function untilShedding (t: Test, base: string): Promise<void> {
  let status = 0
  for (let i = 0; i < 100 && status !== 503; i++) {
    status = await fetch(`${base}/model`).then((res) => res.status)
    if (status !== 503) await sleep(100)
  }
  t.equal(status, 503, 'the service sheds every request (heap limit of 1 byte)')
}

t.test('503 OVERLOADED with Retry-After: the client tries maxTries times, then returns the typed error', async (t) => {
  const base = await listening(t, { pressure: ALWAYS_OVERLOADED })
  await untilShedding(t, base)
  const { client, statuses, waits } = observedClient(base, { maxTries: 3, maxWaitMs: 5_000 })
  const { data, error, response } = await predictSlice(client, await slice())
  t.equal(data, undefined)
  t.equal(response.status, 503)
  t.equal(error?.code, 'OVERLOADED', 'the typed error of the last try')
  t.same(statuses, [503, 503, 503], 'exactly three tries')
  t.same(waits.map((wait) => [wait.nextTry, wait.waitMs]), [[2, 1_000], [3, 1_000]], 'Retry-After: 1 waited before each retry')
})

t.test('the CLI with --url gives up after --max-tries on a shedding service: a typed failed row, exit code 1', async (t) => {
  const base = await listening(t, { pressure: ALWAYS_OVERLOADED })
  await untilShedding(t, base)
  const { code, stdout, stderr } = await cli('predict', DICOM, '--url', base, '--max-tries', '2')
  t.equal(code, 1)
  t.match(JSON.parse(stdout), [{ error: { code: 'OVERLOADED', statusCode: 503 } }])
  t.match(stderr, /the service answered 503; waiting 1 s for try 2 of 2\n/)
  t.notMatch(stderr, /try 3/, 'no third try')
})

t.test('the CLI with --url waits out the rate limit: every slice of the folder is classified, exit code 0', async (t) => {
  const base = await listening(t, { rateLimit: { max: 1, windowMs: 2_000 } })
  const files = await ctKidneyFiles('test/stone', 3)
  const { code, stdout, stderr } = await cli('predict', ...files, '--url', base)
  t.equal(code, 0, 'exit code 0', { stderr })
  const results = JSON.parse(stdout) as Array<{ prediction?: string }>
  t.equal(results.filter((r) => r.prediction !== undefined).length, 3, 'three slices, three predictions')
  t.match(stderr, /the service answered 429; waiting [12] s for try 2 of 5\n/, 'at least one slice was refused and sent again')
  t.match(stderr, /3 file\(s\): 3 classified, 0 failed\n$/)
})

t.test('Retry-After is read as seconds or as an HTTP date', async (t) => {
  const now = Date.parse('2026-12-04T10:00:00Z')
  const answer = (value: string): Response => new Response(null, { status: 429, headers: { 'retry-after': value } })
  t.equal(retryAfterMs(answer('7'), now), 7_000)
  t.equal(retryAfterMs(answer('Fri, 04 Dec 2026 10:00:30 GMT'), now), 30_000)
  t.equal(retryAfterMs(answer('Fri, 04 Dec 2026 09:59:00 GMT'), now), 0, 'a date already past: at once')
  t.equal(retryAfterMs(answer('soon'), now), undefined)
  t.equal(retryAfterMs(new Response(null, { status: 503 }), now), undefined)
})

t.test('a retry policy that could retry forever is refused; unset fields take the defaults', async (t) => {
  t.same(retryPolicy({ maxTries: 2 }), { ...DEFAULT_RETRY, maxTries: 2, onRetry: undefined })
  t.same(retryPolicy({ maxTries: undefined }), { ...DEFAULT_RETRY, onRetry: undefined })
  t.throws(() => retryPolicy({ maxTries: 0 }), RangeError)
  t.throws(() => retryPolicy({ maxTries: Number.NaN }), RangeError)
  t.throws(() => retryPolicy({ maxWaitMs: -1 }), RangeError)
  t.throws(() => createKidneyStoneClient('http://127.0.0.1:1', {}, { retry: { maxTries: 1.5 } }), RangeError)
})
