import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Value } from '@sinclair/typebox/value'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../app.js'
import { ConfigError, loadConfig, type PressureLimits } from '../plugins/app/config.js'
import { ErrorSchema } from '../schemas/error.js'
import { build, RECORDS_OFF } from './helper.js'

const NO_PRESSURE: PressureLimits = { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 0, maxRssBytes: 0, retryAfterS: 7 }

/** Polls until the answer has the wanted status; under-pressure samples once per second. */
async function untilStatus (app: FastifyInstance, url: string, status: number, attempts = 50): Promise<LightMyRequestResponse> {
  let res = await app.inject({ method: 'GET', url })
  for (let i = 0; i < attempts && res.statusCode !== status; i++) {
    await sleep(100)
    res = await app.inject({ method: 'GET', url })
  }
  return res
}

t.test('rate limit: 429 RATE_LIMITED with Retry-After once a client spends its budget; probes are exempt', async (t) => {
  const app = await build(t, { config: { rateLimit: { max: 3, windowMs: 60_000 } } })
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'GET', url: '/model' })).statusCode, 200)
  const limited = await app.inject({ method: 'GET', url: '/model' })
  t.equal(limited.statusCode, 429)
  t.ok(Value.Check(ErrorSchema, limited.json()))
  t.equal(limited.json().code, 'RATE_LIMITED')
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After in seconds')
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'liveness not limited')
  const other = await app.inject({ method: 'GET', url: '/model', remoteAddress: '10.0.0.2' })
  t.equal(other.statusCode, 200, 'another client has its own budget')
})

t.test('rate limit: a client without credentials, or asking for unknown paths, spends the same budget', async (t) => {
  // Authentication's hook ran before the rate limit's, which was tied to each route: with AUTH_MODE on, requests
  // without credentials were refused 401 without limit, and so were unknown paths (404, no route), each leaving an
  // audit event in the records database.
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: 'clinic:clinic-0123456789abcdef' }).auth
  const app = await build(t, { config: { auth, rateLimit: { max: 3, windowMs: 60_000 } } })
  const key = { 'x-api-key': 'clinic-0123456789abcdef' }
  const statuses = []
  for (const url of ['/model', '/no-such-path', '/predictions']) statuses.push((await app.inject({ method: 'GET', url })).statusCode)
  const limited = await app.inject({ method: 'GET', url: '/model', headers: key })
  t.same(statuses, [401, 401, 401])
  t.equal(limited.statusCode, 429, 'the fourth request of the address is limited, credentials or not')
  t.equal(limited.json().code, 'RATE_LIMITED')
  t.equal((await app.inject({ method: 'GET', url: '/elsewhere', headers: key })).statusCode, 429, 'an unknown path too')
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200, 'probes stay exempt')
  const other = await app.inject({ method: 'GET', url: '/model', headers: key, remoteAddress: '10.0.0.2' })
  t.equal(other.statusCode, 200, 'another client has its own budget')
})

t.test('the default rate limit admits ten 300-slice series a minute from one client, one slice per request', async (t) => {
  const defaults = loadConfig({}).rateLimit
  t.equal(defaults.windowMs, 60_000, 'a one-minute window')
  // The same budget over an hour, so that however slow this machine, the requests below fall in one window.
  const app = await build(t, { config: { rateLimit: { max: defaults.max, windowMs: 3_600_000 } } })
  const statuses = new Map<number, number>()
  for (let i = 0; i < 10 * 300; i++) {
    const { statusCode } = await app.inject({ method: 'GET', url: '/model' })
    statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
  }
  t.same(Object.fromEntries(statuses), { 200: 3000 }, 'no request of the ten series refused')
  t.equal((await app.inject({ method: 'GET', url: '/model' })).statusCode, 429, 'the next one in the same window is')
})

t.test('memory pressure: 503 OVERLOADED with Retry-After, liveness still answers', async (t) => {
  const app = await build(t, { config: { pressure: { ...NO_PRESSURE, maxHeapUsedBytes: 1 } } })
  const res = await untilStatus(app, '/model', 503)
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'OVERLOADED')
  t.ok(Value.Check(ErrorSchema, res.json()))
  t.equal(res.headers['retry-after'], '7')
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200)
})

t.test('event-loop pressure: a blocked loop sheds requests with 503, then recovers', async (t) => {
  const app = await build(t, { config: { pressure: { ...NO_PRESSURE, maxEventLoopDelayMs: 50 } } })
  // Loading the model lags the loop too; wait for a calm sample first.
  t.equal((await untilStatus(app, '/model', 200)).statusCode, 200, 'answers while the loop is free')
  // A sustained lag (100 ms blocks, as runaway synchronous work would cause), longer than one sample interval.
  const until = Date.now() + 2_500
  while (Date.now() < until) {
    const blockEnd = Date.now() + 100
    while (Date.now() < blockEnd) { /* busy */ }
    await new Promise((resolve) => setImmediate(resolve))
  }
  const shed = await untilStatus(app, '/model', 503)
  t.equal(shed.statusCode, 503)
  t.equal(shed.json().code, 'OVERLOADED')
  t.equal((await untilStatus(app, '/model', 200)).statusCode, 200, 'answers again once the loop is free')
})

t.test('CORS: only allow-listed origins get CORS headers; preflight works without credentials', async (t) => {
  const origin = 'https://viewer.hospital.example'
  const app = await build(t, { config: { corsOrigins: [origin] } })
  const preflight = await app.inject({ method: 'OPTIONS', url: '/predict',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key' } })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], origin)
  t.match(String(preflight.headers['access-control-allow-headers']), /x-api-key/)
  const allowed = await app.inject({ method: 'GET', url: '/model', headers: { origin } })
  t.equal(allowed.headers['access-control-allow-origin'], origin)
  t.match(String(allowed.headers['access-control-expose-headers']), /server-timing/)
  const foreign = await app.inject({ method: 'GET', url: '/model', headers: { origin: 'https://evil.example' } })
  t.notOk(foreign.headers['access-control-allow-origin'], 'other origins get no CORS header')

  const closed = await build(t)
  const none = await closed.inject({ method: 'GET', url: '/model', headers: { origin } })
  t.notOk(none.headers['access-control-allow-origin'], 'no cross-origin access by default')
})

t.test('helmet security headers on answers and on typed errors', async (t) => {
  const app = await build(t)
  for (const url of ['/', '/model', '/no-such-route']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.headers['x-content-type-options'], 'nosniff', `${url}: nosniff`)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', `${url}: frame options`)
    t.match(String(res.headers['content-security-policy']), /default-src 'self'/, `${url}: CSP`)
    t.match(String(res.headers['strict-transport-security']), /max-age=\d+/, `${url}: HSTS`)
    t.equal(res.headers['referrer-policy'], 'no-referrer', `${url}: referrer policy`)
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', `${url}: COOP`)
    t.notOk(res.headers['x-powered-by'], `${url}: no X-Powered-By`)
  }
})

t.test('an unexpected exception in one request answers 500 INTERNAL_ERROR and the process keeps serving', async (t) => {
  const uploadDir = await mkdtemp(join(tmpdir(), 'kidney-uploads-'))
  const app = await buildApp({ logger: false, config: { uploadDir, records: RECORDS_OFF } })
  t.teardown(async () => { await app.close(); await rm(uploadDir, { recursive: true, force: true }) })
  // Test-only routes, registered here: the service has no route that fails on purpose.
  app.get('/test/throws', async () => { throw new TypeError('cannot read /srv/secret/path of undefined') })
  app.get('/test/throws-non-error', async () => { throw { detail: 'not an Error' } }) // eslint-disable-line @typescript-eslint/only-throw-error
  app.get('/test/rejects-later', async () => await new Promise((_resolve, reject) => setTimeout(() => reject(new RangeError('late')), 10)))
  await app.ready()
  for (const url of ['/test/throws', '/test/throws-non-error', '/test/rejects-later']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 500, `${url}: 500`)
    t.ok(Value.Check(ErrorSchema, res.json()), 'typed body')
    t.equal(res.json().code, 'INTERNAL_ERROR')
    t.notMatch(res.body, /secret|TypeError|at .*\.ts/, 'no internals leak')
  }
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'still serving')
  t.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200)
})

t.test('limits are validated at start-up', async (t) => {
  t.throws(() => loadConfig({ HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '10000' }), /HEADERS_TIMEOUT_MS/)
  t.ok((() => { try { loadConfig({ AUTH_MODE: 'jwt' }) } catch (error) { return error instanceof ConfigError } })(), 'a ConfigError')
  t.throws(() => loadConfig({ RATE_LIMIT_MAX: '-1' }), /RATE_LIMIT_MAX/)
  t.throws(() => loadConfig({ PRESSURE_MAX_EVENT_LOOP_UTILIZATION: '1.5' }), /PRESSURE_MAX_EVENT_LOOP_UTILIZATION/)
  t.throws(() => loadConfig({ TRUST_PROXY: 'maybe' }), /TRUST_PROXY/)
  const config = loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example', MAX_FIELDS: '3' })
  t.same(config.corsOrigins, ['https://a.example', 'https://b.example'])
  t.equal(config.maxFields, 3)
})
