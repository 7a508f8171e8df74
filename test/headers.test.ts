import { connect } from 'node:net'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import { Value } from '@sinclair/typebox/value'
import type { LightMyRequestResponse } from 'fastify'
import { ErrorSchema } from '../schemas/error.js'
import { sha256 } from '../plugins/app/auth-config.js'
import { loadConfig } from '../plugins/app/config.js'
import { BOUNDARY, encodeMultipart } from './hostile/request-cases.js'
import { build, ctKidneyImage, fileUpload, UUID } from './helper.js'

const KEY = 'radiology-0123456789abcdef'
const METRICS_ONLY = 'grafana-0123456789abcdef'
const ORIGIN = 'https://viewer.hospital.example'

/** Helmet's headers every answer must carry (docs/operations.md "CORS and security headers" promises them on every answer, errors included). */
function missingHelmetHeaders (res: LightMyRequestResponse): string[] {
  const expected: Record<string, RegExp> = {
    'x-content-type-options': /^nosniff$/,
    'x-frame-options': /^SAMEORIGIN$/,
    'content-security-policy': /default-src 'self'/,
    'strict-transport-security': /max-age=\d+/,
    'referrer-policy': /^no-referrer$/,
    'cross-origin-opener-policy': /^same-origin$/
  }
  return Object.entries(expected).filter(([name, pattern]) => !pattern.test(String(res.headers[name] ?? ''))).map(([name]) => name)
}

function typed (t: Test, res: LightMyRequestResponse, status: number, code: string): void {
  t.equal(res.statusCode, status, `${code}: HTTP ${status}`)
  t.match(String(res.headers['content-type']), /^application\/json/, `${code}: JSON`)
  const body: unknown = res.json()
  t.ok(Value.Check(ErrorSchema, body), `${code}: typed body`)
  t.equal((body as { code: string }).code, code)
}

t.test('helmet headers on every answer: 200, 401, 403, 404, 415, 429, 503 and CORS preflights', async (t) => {
  const app = await build(t, {
    config: {
      rateLimit: { max: 4, windowMs: 60_000 },
      corsOrigins: [ORIGIN],
      auth: {
        mode: 'api-key',
        apiKeyHeader: 'x-api-key',
        apiKeys: [
          { name: 'radiology', sha256: sha256(KEY), scopes: ['predict'] },
          { name: 'grafana', sha256: sha256(METRICS_ONLY), scopes: ['metrics'] }
        ],
        docsPublic: true,
        metricsPublic: false
      }
    }
  })
  const answers: Array<[string, LightMyRequestResponse, number, string?]> = [
    ['200', await app.inject({ method: 'GET', url: '/health/live' }), 200],
    ['401', await app.inject({ method: 'GET', url: '/model' }), 401, 'UNAUTHORIZED'],
    ['403', await app.inject({ method: 'POST', url: '/predict', headers: { 'x-api-key': METRICS_ONLY } }), 403, 'FORBIDDEN'],
    ['404', await app.inject({ method: 'GET', url: '/no/such/route', headers: { 'x-api-key': KEY } }), 404, 'NOT_FOUND'],
    ['415', await app.inject({ method: 'POST', url: '/predict', headers: { 'x-api-key': KEY, 'content-type': 'text/plain' }, payload: 'x' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['preflight 204', await app.inject({ method: 'OPTIONS', url: '/predict', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } }), 204],
    ['preflight without its headers', await app.inject({ method: 'OPTIONS', url: '/predict', headers: { origin: ORIGIN } }), 400, 'INVALID_PREFLIGHT'],
    ['preflight from another origin', await app.inject({ method: 'OPTIONS', url: '/predict', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } }), 403, 'CORS_ORIGIN_NOT_ALLOWED']
  ]
  let limited: LightMyRequestResponse | undefined
  for (let i = 0; i < 10 && limited === undefined; i++) {
    const res = await app.inject({ method: 'GET', url: '/model', headers: { 'x-api-key': KEY } })
    if (res.statusCode === 429) limited = res
  }
  t.ok(limited, 'the rate limit was reached')
  answers.push(['429', limited!, 429, 'RATE_LIMITED'])
  for (const [name, res, status, code] of answers) {
    t.same(missingHelmetHeaders(res), [], `${name}: every helmet header`)
    if (code !== undefined) typed(t, res, status, code)
    else t.equal(res.statusCode, status, `${name}: HTTP ${status}`)
  }
  const preflight = answers.find(([name]) => name === 'preflight 204')![1]
  t.equal(preflight.headers['access-control-allow-origin'], ORIGIN, 'the allowed preflight still gets its CORS headers')
})

t.test('503 OVERLOADED from memory pressure carries helmet headers, CORS headers and Retry-After', async (t) => {
  const app = await build(t, { config: { corsOrigins: [ORIGIN], pressure: { maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0, maxHeapUsedBytes: 1, maxRssBytes: 0, retryAfterS: 7 } } })
  let res = await app.inject({ method: 'GET', url: '/model', headers: { origin: ORIGIN } })
  for (let i = 0; i < 50 && res.statusCode !== 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    res = await app.inject({ method: 'GET', url: '/model', headers: { origin: ORIGIN } })
  }
  typed(t, res, 503, 'OVERLOADED')
  t.equal(res.headers['retry-after'], '7')
  t.same(missingHelmetHeaders(res), [])
  t.equal(res.headers['access-control-allow-origin'], ORIGIN, 'a browser front end can read the refusal')
  t.match(String(res.headers['access-control-expose-headers']), /retry-after/, 'and its Retry-After')
  const preflight = await app.inject({ method: 'OPTIONS', url: '/predict', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } })
  t.equal(preflight.statusCode, 204, 'an allowed preflight is still answered, so the browser sends the request and reads its 503')
  t.equal(preflight.headers['access-control-allow-origin'], ORIGIN)
})

t.test('error messages are ours: no path echoed, no library wording', async (t) => {
  const app = await build(t)
  const path = '/%3Cscript%3Ealert(1)%3C/script%3E/../../etc/passwd'
  const notFound = await app.inject({ method: 'GET', url: path })
  typed(t, notFound, 404, 'NOT_FOUND')
  t.notMatch(notFound.body, /script|passwd|etc/, 'the path is not reflected')

  const wrongField = await app.inject({ method: 'POST', url: '/predict', ...encodedForm('comment', 'text only') })
  t.equal(wrongField.statusCode, 400)
  t.notMatch(wrongField.json().message, /must have required property|must be object|must match/, 'no Ajv wording')

  const slice = await ctKidneyImage('test/normal')
  const ok = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice) })
  t.equal(ok.statusCode, 200, 'a valid upload still passes')
})

t.test('errors the router raises before any route are typed too, without the path or Fastify\'s code', async (t) => {
  const app = await build(t)
  const long = await app.inject({ method: 'GET', url: `/predictions/${'secret'.repeat(40)}` })
  typed(t, long, 414, 'URI_TOO_LONG')
  t.notMatch(long.body, /secret|FST_/, 'neither the path nor the framework\'s code')
  const malformed = await app.inject({ method: 'GET', url: '/predictions/%E0%A4%A' })
  typed(t, malformed, 400, 'BAD_URL')
  t.notMatch(malformed.body, /%E0|FST_/)
  t.same(missingHelmetHeaders(long), [], 'helmet headers on the 414')
  t.same(missingHelmetHeaders(malformed), [], 'helmet headers on the 400')
  const traced = await app.inject({ method: 'GET', url: '/predictions/%E0%A4%A', headers: { 'x-request-id': 'trace-42' } })
  t.equal(traced.headers['x-request-id'], 'trace-42', 'the caller\'s request id comes back, as on any answer')
  t.match(String(long.headers['x-request-id']), /^[0-9a-f-]{36}$/, 'one is made when the caller sent none')
})

t.test('a caller\'s x-request-id is kept only when it is a plain identifier of at most 128 characters', async (t) => {
  // The id goes into every log line of the request and into its records and audit events: a client without
  // credentials chose up to 16 kB (Node's header limit) for each refusal's audit event.
  const app = await build(t)
  const idOf = async (id: string): Promise<string> => String((await app.inject({ method: 'GET', url: '/model', headers: { 'x-request-id': id } })).headers['x-request-id'])
  for (const kept of ['trace-42', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'Root=1-5759e988-bd862e3fe1be46a994272793', 'x'.repeat(128)]) {
    t.equal(await idOf(kept), kept, `kept: ${kept.slice(0, 40)}`)
  }
  for (const replaced of ['x'.repeat(129), 'r'.repeat(15_000), 'two words', 'caf\u00e9']) {
    t.match(await idOf(replaced), UUID, `replaced by a UUID: ${replaced.slice(0, 20)}`)
  }
})

t.test('a path the web page\'s static files will not resolve is 404 NOT_FOUND, not the FORBIDDEN of a missing scope', async (t) => {
  // @fastify/static answers an empty segment, '..' or a NUL with 403, which the error handler passed on as
  // 403 FORBIDDEN, the code api.md gives to valid credentials without the predict scope.
  const app = await build(t)
  for (const url of ['/app//etc/passwd', '/app/....//....//package.json', '/app/index.html%00.js']) {
    typed(t, await app.inject({ method: 'GET', url }), 404, 'NOT_FOUND')
  }
  t.equal((await app.inject({ method: 'GET', url: '/app/' })).statusCode, 200, 'the page itself is served')
})

/** The CORS headers of an answer (@fastify/cors sets Vary: Origin with them). */
function corsHeaders (res: LightMyRequestResponse): Record<string, unknown> {
  return Object.fromEntries(Object.entries(res.headers).filter(([name]) => name.startsWith('access-control-') || name === 'vary'))
}

t.test('the router\'s own errors carry the CORS headers of any other answer: a browser reads the typed 414 and 400', async (t) => {
  const app = await build(t, { config: { corsOrigins: [ORIGIN] } })
  for (const origin of [ORIGIN, 'https://evil.example']) {
    const headers = { origin }
    const notFound = await app.inject({ method: 'GET', url: '/no/such/route', headers })
    const long = await app.inject({ method: 'GET', url: `/predictions/${'x'.repeat(300)}`, headers })
    const malformed = await app.inject({ method: 'GET', url: '/predictions/%E0%A4%A', headers })
    typed(t, long, 414, 'URI_TOO_LONG')
    typed(t, malformed, 400, 'BAD_URL')
    t.same(corsHeaders(long), corsHeaders(notFound), `${origin}: the 414 has the CORS headers of a 404`)
    t.same(corsHeaders(malformed), corsHeaders(notFound), `${origin}: the 400 has the CORS headers of a 404`)
    t.same(missingHelmetHeaders(long), [], `${origin}: and helmet's`)
  }
  const allowed = await app.inject({ method: 'GET', url: `/predictions/${'x'.repeat(300)}`, headers: { origin: ORIGIN } })
  t.equal(allowed.headers['access-control-allow-origin'], ORIGIN, 'an allowed origin may read the 414')
  t.match(String(allowed.headers['access-control-expose-headers']), /x-request-id/)
  const foreign = await app.inject({ method: 'GET', url: `/predictions/${'x'.repeat(300)}`, headers: { origin: 'https://evil.example' } })
  t.notOk(foreign.headers['access-control-allow-origin'], 'another origin may not')
  const closed = await build(t)
  const none = await closed.inject({ method: 'GET', url: `/predictions/${'x'.repeat(300)}`, headers: { origin: ORIGIN } })
  t.same(corsHeaders(none), {}, 'without CORS_ORIGINS, no CORS header on a router error either')
})

t.test('CORS_ORIGINS: an entry not written as a browser sends its origin stops start-up, naming the origin to write', async (t) => {
  // Taken on the old code: the entries are compared with the Origin header as they are, so each of these matched no
  // browser, and every call from the page listed was refused (a preflight 403 CORS_ORIGIN_NOT_ALLOWED).
  const refused: Array<[string, RegExp]> = [
    ['https://viewer.hospital.example/', /write https:\/\/viewer\.hospital\.example$/],
    ['https://viewer.hospital.example:443', /write https:\/\/viewer\.hospital\.example$/],
    ['https://Viewer.Hospital.example', /write https:\/\/viewer\.hospital\.example$/],
    ['http://viewer.hospital.example:8080/app/', /write http:\/\/viewer\.hospital\.example:8080$/],
    ['viewer.hospital.example', /is no origin/],
    ['localhost:8080', /is no origin/],
    ['null', /is no origin/],
    ['capacitor://localhost/', /write capacitor:\/\/localhost$/]
  ]
  for (const [entry, message] of refused) {
    t.throws(() => loadConfig({ CORS_ORIGINS: `https://pacs.hospital.example, ${entry}` }), { message: /^Invalid environment variable CORS_ORIGINS: / }, entry)
    t.throws(() => loadConfig({ CORS_ORIGINS: entry }), { message }, `${entry}: names what to write`)
  }
  // A mobile or desktop viewer's web view sends its own scheme's origin (refused as 'no origin' by 4f064c1's check).
  const origins = ['*', 'https://viewer.hospital.example', 'http://127.0.0.1:8080', 'http://[::1]:8080', 'capacitor://localhost', 'app://viewer']
  t.same(loadConfig({ CORS_ORIGINS: origins.join(', ') }).corsOrigins, origins, 'origins as browsers send them are taken')
  const app = await build(t, { config: { corsOrigins: loadConfig({ CORS_ORIGINS: 'https://viewer.hospital.example' }).corsOrigins } })
  const preflight = await app.inject({ method: 'OPTIONS', url: '/predict', headers: { origin: 'https://viewer.hospital.example', 'access-control-request-method': 'POST' } })
  t.equal(preflight.statusCode, 204, 'and answer the page')
})

t.test('credentials are never logged, even at LOG_LEVEL=trace', async (t) => {
  // @fastify/multipart logs the options it gives busboy at trace, the request's headers among them: every upload's
  // API key and bearer token went to the log in clear.
  const text: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { text.push(chunk.toString()); done() } })
  const auth = loadConfig({ AUTH_MODE: 'any', AUTH_API_KEYS: 'clinic:clinic-0123456789abcdef', AUTH_API_KEY_HEADER: 'X-Clinic-Key', AUTH_JWT_SECRET: 'a-test-only-hs256-secret-of-at-least-32-bytes', AUTH_JWT_ISSUER: 'https://idp.example', AUTH_JWT_AUDIENCE: 'kidney' }).auth
  const app = await build(t, { logger: { level: 'trace', stream }, config: { auth } })
  const upload = fileUpload(await ctKidneyImage('test/stone'))
  const res = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-clinic-key': 'clinic-0123456789abcdef', authorization: 'Bearer not-a-token-but-secret' } })
  t.equal(res.statusCode, 200, 'the key is accepted')
  const log = text.join('')
  t.match(log, /Providing options to busboy/, 'the trace line that carried the headers is still written')
  t.notMatch(log, /clinic-0123456789abcdef/, 'no API key in the log')
  t.notMatch(log, /not-a-token-but-secret/, 'no bearer token in the log')
})

/** What the server sends on a new connection after `head`, until it closes it or `body` has been answered. */
async function exchange (port: number, head: string, body: Buffer): Promise<string> {
  return await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head))
    let text = ''
    let sent = false
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      // The client sends its body only once invited, as curl and .NET do (curl waits a second, then sends anyway).
      if (/^HTTP\/1\.1 100 /.test(text) && !sent) {
        sent = true
        socket.write(body)
      }
    })
    socket.on('close', () => resolve(text))
  })
}

t.test('Expect: 100-continue is answered 100 only once the request may send its body', async (t) => {
  // Node sent 100 Continue on arrival, before any refusal: a client without credentials was invited to send its
  // upload, and was refused only then.
  const auth = loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: 'clinic:clinic-0123456789abcdef' }).auth
  const app = await build(t, { config: { auth } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const body = encodeMultipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: await ctKidneyImage('test/stone') }])
  const head = (key: string): string => `POST /predict HTTP/1.1\r\nHost: localhost\r\n${key}Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
    `Content-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`
  const refused = await exchange(port, head(''), body)
  t.match(refused, /^HTTP\/1\.1 401 /, 'without credentials: 401 at once, no 100 Continue')
  const accepted = await exchange(port, head('x-api-key: clinic-0123456789abcdef\r\n'), body)
  t.match(accepted, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'with them: 100, the body, then the answer')
})

function encodedForm (name: string, value: string): { payload: Buffer, headers: Record<string, string> } {
  return { payload: encodeMultipart([{ name, data: value }]), headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }
}

interface LogLine { level: number, msg: string, reqId?: string, err?: unknown, code?: string }

t.test('a client abort is logged at info and a request timeout at warn, with the request id and no stack', async (t) => {
  const lines: LogLine[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString()) as LogLine); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { requestTimeoutMs: 1_500, headersTimeoutMs: 1_000 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  const body = encodeMultipart([{ name: 'file', filename: 'slice.jpg', contentType: 'image/jpeg', data: Buffer.alloc(300_000, 1) }])
  const head = `POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${body.length}\r\n\r\n`

  // The client sends part of the body and hangs up.
  await new Promise<void>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head)
      socket.write(body.subarray(0, 100_000), () => setTimeout(() => { socket.destroy(); resolve() }, 300))
    })
  })
  // The client sends part of the body and stops: REQUEST_TIMEOUT_MS cuts it off with a 408.
  const answer = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.write(head); socket.write(body.subarray(0, 100_000)) })
    let text = ''
    socket.on('data', (chunk) => { text += chunk.toString('latin1') })
    socket.on('close', () => resolve(text))
  })
  t.match(answer, /^HTTP\/1\.1 408 /, 'the timed-out request is answered 408')
  await new Promise((resolve) => setTimeout(resolve, 300))

  const aborted = lines.filter((line) => line.msg === 'client aborted the request')
  const timedOut = lines.filter((line) => line.msg === 'request timed out before its body arrived')
  t.equal(aborted.length, 1, 'the abort is logged once')
  t.equal(aborted[0]?.level, 30, 'at info')
  t.equal(timedOut.length, 1, 'the timeout is logged once')
  t.equal(timedOut[0]?.level, 40, 'at warn')
  for (const line of [...aborted, ...timedOut]) {
    t.match(line.reqId, /^[0-9a-f-]{36}$/, 'with the request id')
    t.equal(line.err, undefined, 'without an error object or stack')
  }
  t.same(lines.filter((line) => line.level >= 50).map((line) => line.msg), [], 'nothing logged at error level')
})
