import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../plugins/app/config.js'
import { matchApiKey } from '../plugins/app/auth.js'
import { parseApiKeys } from '../plugins/app/auth-config.js'
import { build, configRefusal, ctKidneyImage, fileUpload, RECORDS_OFF } from './helper.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { recordsApp } from './records/suite.js'

const CLINIC_KEY = 'clinic-0123456789abcdef'
const MONITOR_KEY = 'monitor-0123456789abcdef'
const SECRET = 'a-test-only-hs256-secret-of-at-least-32-bytes'
const ISSUER = 'https://idp.hospital.example'
const AUDIENCE = 'kidney-stone-service'

type Alg = 'HS256' | 'RS256' | 'ES256'

function signJwt (payload: Record<string, unknown>, alg: Alg, key: string | KeyObject): string {
  const data = `${Buffer.from(JSON.stringify({ alg, typ: 'JWT' })).toString('base64url')}.` +
    Buffer.from(JSON.stringify(payload)).toString('base64url')
  const signature = alg === 'HS256'
    ? createHmac('sha256', key as string).update(data).digest()
    : sign('sha256', Buffer.from(data), alg === 'ES256' ? { key: key as KeyObject, dsaEncoding: 'ieee-p1363' } : key as KeyObject)
  return `${data}.${signature.toString('base64url')}`
}

function claims (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { iss: ISSUER, aud: AUDIENCE, sub: 'dr-who', scope: 'predict', iat: now, exp: now + 300, ...overrides }
}

async function authApp (test: Parameters<typeof build>[0], env: NodeJS.ProcessEnv): Promise<FastifyInstance> {
  return await build(test, { config: { auth: loadConfig(env).auth, rateLimit: { max: 0, windowMs: 1000 } } })
}

async function status (app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<[number, string?]> {
  const res = await app.inject({ method: 'GET', url, headers })
  return [res.statusCode, res.statusCode >= 400 ? res.json().code : undefined]
}

t.test('authentication is off by default: every route answers without credentials', async (t) => {
  t.equal(loadConfig({}).auth.mode, 'none')
  const app = await build(t)
  t.same(await status(app, '/model'), [200, undefined])
})

t.test('API keys: 401 without or with a wrong key, 403 without the predict scope, probes stay public', async (t) => {
  const app = await authApp(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS: `clinic:${CLINIC_KEY},monitor:${MONITOR_KEY}:read` })
  t.same(await status(app, '/health/live'), [200, undefined], 'liveness is public')
  t.same(await status(app, '/health/ready'), [200, undefined], 'readiness is public')
  t.same(await status(app, '/docs/json'), [200, undefined], 'docs are public by default')
  t.same(await status(app, '/metrics'), [401, 'UNAUTHORIZED'], 'metrics need a key by default')
  t.same(await status(app, '/metrics', { 'x-api-key': MONITOR_KEY }), [200, undefined], 'a monitoring key reads the metrics')
  t.same(await status(app, '/model'), [401, 'UNAUTHORIZED'], 'no key')
  // until 2026-12-05 every mode asked for "a valid API key or bearer token", a token this mode never reads
  t.equal((await app.inject({ method: 'GET', url: '/model', headers: { authorization: 'Bearer x.y.z' } })).json().message,
    'Authentication required: send a valid API key in the x-api-key header.', 'the 401 names what this mode reads, and where')
  t.same(await status(app, '/model', { 'x-api-key': 'clinic-0123456789abcdeX' }), [401, 'UNAUTHORIZED'], 'wrong key')
  t.same(await status(app, '/no-such-route'), [401, 'UNAUTHORIZED'], 'unknown routes do not reveal themselves')
  t.same(await status(app, '/model', { 'x-api-key': MONITOR_KEY }), [200, undefined], 'any valid key reads metadata')
  t.same(await status(app, '/', { 'x-api-key': CLINIC_KEY }), [200, undefined])

  const slice = await ctKidneyImage('test/stone')
  const predict = async (headers: Record<string, string>): Promise<number> => {
    const upload = fileUpload(slice)
    return (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, ...headers } })).statusCode
  }
  t.equal(await predict({}), 401)
  t.equal(await predict({ 'x-api-key': MONITOR_KEY }), 403, 'a key without the predict scope is forbidden')
  t.equal(await predict({ 'x-api-key': CLINIC_KEY }), 200, 'keys get the predict scope by default')
  const forbidden = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice), headers: { ...fileUpload(slice).headers, 'x-api-key': MONITOR_KEY } })
  t.match(forbidden.json(), { statusCode: 403, code: 'FORBIDDEN', error: 'Forbidden' }, 'typed 403 body')
  // STOW-RS classifies by both its paths; reading a study needs no predict scope
  for (const url of ['/studies', '/studies/1.2.826.0.1.3680043.8.498.1']) {
    const stow = await app.inject({ method: 'POST', url, payload: '--x--', headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x', 'x-api-key': MONITOR_KEY } })
    t.equal(stow.json().code, 'FORBIDDEN', `POST ${url} without the predict scope`)
  }
  t.not((await status(app, '/studies/1.2.826.0.1.3680043.8.498.1', { 'x-api-key': MONITOR_KEY }))[1], 'FORBIDDEN', 'GET /studies/{uid} with any key')
})

t.test('API keys from a file; docs can be protected; bad key settings stop start-up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-keys-'))
  const file = join(dir, 'keys')
  await writeFile(file, `# one key per line\nclinic:${CLINIC_KEY}:predict read\n`)
  const app = await authApp(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS_FILE: file, AUTH_DOCS: 'protected' })
  t.same(await status(app, '/docs/json'), [401, 'UNAUTHORIZED'], 'protected docs')
  t.same(await status(app, '/metrics'), [401, 'UNAUTHORIZED'], 'protected metrics')
  const scraped = await authApp(t, { AUTH_MODE: 'api-key', AUTH_API_KEYS_FILE: file, AUTH_METRICS: 'public' })
  t.same(await status(scraped, '/metrics'), [200, undefined], 'AUTH_METRICS=public: a scraper needs no key')
  t.same(await status(scraped, '/model'), [401, 'UNAUTHORIZED'], 'only the metrics are opened')
  t.same(await status(app, '/docs/json', { 'x-api-key': CLINIC_KEY }), [200, undefined])

  t.throws(() => loadConfig({ AUTH_MODE: 'api-key' }), /AUTH_API_KEYS/, 'api-key mode without keys')
  t.throws(() => loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: 'clinic:short' }), /shorter than 16/)
  t.throws(() => loadConfig({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET }), /AUTH_JWT_ISSUER/)
  t.throws(() => loadConfig({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: 'too-short', AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE }),
    /at least 32 bytes/)
  t.throws(() => loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS_FILE: join(dir, 'missing') }), /cannot read/)
  // The same key under two names was the second one's, with its scopes (records:read-all here): refused, not echoed.
  let message = ''
  try { loadConfig({ AUTH_MODE: 'api-key', AUTH_API_KEYS: `clinic:${CLINIC_KEY},auditor:${CLINIC_KEY}:records:read-all` }) } catch (error) { message = (error as Error).message }
  t.match(message, /"clinic" and "auditor" have the same key/)
  t.notMatch(message, CLINIC_KEY, 'the key is not in the message')
})

t.test('key matching compares hashes of every configured key and finds the right one', async (t) => {
  const keys = parseApiKeys(`a:${CLINIC_KEY},b:${MONITOR_KEY}:read write`, 'test')
  t.equal(matchApiKey(keys, MONITOR_KEY)?.name, 'b')
  t.same(matchApiKey(keys, MONITOR_KEY)?.scopes, ['read', 'write'])
  t.equal(matchApiKey(keys, CLINIC_KEY)?.name, 'a')
  t.equal(matchApiKey(keys, `${CLINIC_KEY} `), undefined)
  t.equal(matchApiKey(keys, ''), undefined)
  t.notOk(keys.some((key) => key.sha256.includes(Buffer.from(CLINIC_KEY))), 'only hashes are kept')
})

t.test('JWT HS256: issuer, audience, expiry and signature enforced; predict scope required for /predict', async (t) => {
  const app = await authApp(t, { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE })
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
  t.same(await status(app, '/model', bearer(signJwt(claims(), 'HS256', SECRET))), [200, undefined], 'valid token')
  const now = Math.floor(Date.now() / 1000)
  const refused: Array<[string, string]> = [
    ['expired', signJwt(claims({ exp: now - 60, iat: now - 600 }), 'HS256', SECRET)],
    ['wrong issuer', signJwt(claims({ iss: 'https://evil.example' }), 'HS256', SECRET)],
    ['wrong audience', signJwt(claims({ aud: 'another-service' }), 'HS256', SECRET)],
    ['no expiry', signJwt(claims({ exp: undefined }), 'HS256', SECRET)],
    ['wrong secret', signJwt(claims(), 'HS256', 'another-secret-that-is-also-32-bytes-long')],
    ['alg none', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.`],
    // records belong to `jwt:<sub>`: without a subject every such token was the one caller `jwt:jwt`
    ['no subject', signJwt(claims({ sub: undefined }), 'HS256', SECRET)],
    ['a numeric subject', signJwt(claims({ sub: 42 }), 'HS256', SECRET)],
    ['an empty subject', signJwt(claims({ sub: '' }), 'HS256', SECRET)],
    // accepted on the old code: its caller jwt:clinic\0admin could not be written (PostgreSQL text holds no NUL), so its
    // every prediction was 503 RECORDS_UNAVAILABLE 'retry after 5 s' and counted as a records write failure
    ['a subject with a NUL', signJwt(claims({ sub: 'clinic\u0000admin' }), 'HS256', SECRET)],
    // accepted on the old code: the group write's JSON parameter refused "\ud800" (SQLSTATE 22P02), so again every
    // prediction was 503 RECORDS_UNAVAILABLE and a records write failure
    ['a subject with a lone surrogate', signJwt(claims({ sub: 'clinic\ud800' }), 'HS256', SECRET)],
    // accepted on the old code (200): fast-jwt checks exp and nbf against the clock, never iat
    ['issued an hour in the future', signJwt(claims({ iat: now + 3600, exp: now + 3900 }), 'HS256', SECRET)],
    ['an iat that is not a number', signJwt(claims({ iat: String(now + 3600) }), 'HS256', SECRET)],
    // 500 INTERNAL_ERROR before: the message's new Date(iat * 1000).toISOString() threw RangeError past year 275760
    ['an iat in microseconds', signJwt(claims({ iat: now * 1_000_000 }), 'HS256', SECRET)],
    ['garbage', 'not.a.token']
  ]
  for (const [name, token] of refused) {
    const res = await app.inject({ method: 'GET', url: '/model', headers: bearer(token) })
    t.equal(res.statusCode, 401, `${name}: 401`)
    t.equal(res.json().code, 'UNAUTHORIZED')
    t.equal(res.headers['www-authenticate'], 'Bearer')
  }
  const expired = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused[0][1]) })
  t.match(expired.json().message, /expired/)
  const anonymous = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused.find(([name]) => name === 'no subject')?.[1] ?? '') })
  t.equal(anonymous.json().message, 'The bearer token names no subject (sub): the service keeps records per subject.')
  const nul = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused.find(([name]) => name === 'a subject with a NUL')?.[1] ?? '') })
  t.equal(nul.json().message, 'The bearer token\'s subject (sub) contains a NUL character, which the records of its requests cannot hold.')
  const surrogate = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused.find(([name]) => name === 'a subject with a lone surrogate')?.[1] ?? '') })
  t.equal(surrogate.json().message, 'The bearer token\'s subject (sub) contains a lone UTF-16 surrogate, which the records of its requests cannot hold.')
  const future = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused.find(([name]) => name === 'issued an hour in the future')?.[1] ?? '') })
  t.equal(future.json().message, `The bearer token was issued in the future (iat ${new Date((now + 3600) * 1000).toISOString()}), beyond the clock tolerance of 5 s.`)
  const micro = await app.inject({ method: 'GET', url: '/model', headers: bearer(refused.find(([name]) => name === 'an iat in microseconds')?.[1] ?? '') })
  t.equal(micro.json().message, `The bearer token was issued in the future (iat ${now * 1_000_000} s), beyond the clock tolerance of 5 s.`)
  t.same(await status(app, '/model', { 'x-api-key': CLINIC_KEY }), [401, 'UNAUTHORIZED'], 'API keys are not accepted in jwt mode')
  t.equal((await app.inject({ method: 'GET', url: '/model', headers: { 'x-api-key': CLINIC_KEY } })).json().message,
    'Authentication required: send a valid bearer token (Authorization: Bearer <token>).', 'the 401 asks for a token, not a key')

  const slice = await ctKidneyImage('test/normal')
  const predictWith = async (token: string): Promise<number> => {
    const upload = fileUpload(slice)
    return (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, ...bearer(token) } })).statusCode
  }
  t.equal(await predictWith(signJwt(claims({ scope: 'read' }), 'HS256', SECRET)), 403, 'no predict scope')
  t.equal(await predictWith(signJwt(claims({ scope: undefined, scp: ['read', 'predict'] }), 'HS256', SECRET)), 200, 'scp array')
  t.equal(await predictWith(signJwt(claims({ scope: 'openid predict' }), 'HS256', SECRET)), 200, 'space-separated scope')
})

t.test('JWT iat: a token issued in the future is accepted within AUTH_JWT_CLOCK_TOLERANCE_S, the tolerance of exp and nbf', async (t) => {
  const app = await authApp(t, { AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE, AUTH_JWT_CLOCK_TOLERANCE_S: '600' })
  const now = Math.floor(Date.now() / 1000)
  const bearer = (payload: Record<string, unknown>): Record<string, string> => ({ authorization: `Bearer ${signJwt(claims(payload), 'HS256', SECRET)}` })
  t.same(await status(app, '/model', bearer({ iat: now + 300 })), [200, undefined], 'issuer\'s clock 5 minutes ahead, within 600 s')
  t.same(await status(app, '/model', bearer({ nbf: now + 300 })), [200, undefined], 'nbf within the same tolerance')
  t.same(await status(app, '/model', bearer({ iat: now + 3600, exp: now + 3900 })), [401, 'UNAUTHORIZED'], 'an hour ahead: beyond it')
  t.same(await status(app, '/model', bearer({ iat: undefined })), [200, undefined], 'iat stays optional')
})

t.test('AUTH_JWT_SCOPE_CLAIM: a namespaced claim (a URL, with dots of its own) is read by its name; a dotted path still reaches into an object', async (t) => {
  // Auth0 requires custom claims named by a URL. On the old code this value stopped start-up (its '/' failed the
  // schema), and read as a path ("https://hospital", "example/scopes") it named nothing: every token 403.
  const claim = 'https://hospital.example/scopes'
  const jwtEnv = (scopeClaim: string): NodeJS.ProcessEnv => ({ AUTH_MODE: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE, AUTH_JWT_SCOPE_CLAIM: scopeClaim })
  const slice = await ctKidneyImage('test/normal')
  const predictWith = async (app: FastifyInstance, payload: Record<string, unknown>): Promise<number> => {
    const upload = fileUpload(slice)
    const authorization = `Bearer ${signJwt(claims({ scope: undefined, ...payload }), 'HS256', SECRET)}`
    return (await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, authorization } })).statusCode
  }
  const namespaced = await authApp(t, jwtEnv(claim))
  t.equal(await predictWith(namespaced, { [claim]: ['predict'] }), 200, 'the namespaced claim, an array')
  t.equal(await predictWith(namespaced, { [claim]: 'openid predict' }), 200, 'the namespaced claim, space-separated')
  t.equal(await predictWith(namespaced, { scope: 'predict' }), 403, 'the scope elsewhere in the token does not count')

  const path = await authApp(t, jwtEnv('realm_access.roles'))
  t.equal(await predictWith(path, { realm_access: { roles: ['predict'] } }), 200, 'a dotted path into an object')
  t.equal(await predictWith(path, { 'realm_access.roles': ['predict'] }), 200, 'a claim named with the dots itself')
  t.throws(() => loadConfig(jwtEnv('a..b')), /AUTH_JWT_SCOPE_CLAIM/, 'an empty step of a path still stops start-up')
})

t.test('JWT RS256 and ES256 with a public key file; AUTH_MODE=any accepts either credential', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kidney-jwt-'))
  for (const [alg, pair] of [['RS256', generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' })]] as const) {
    const file = join(dir, `${alg}.pem`)
    await writeFile(file, pair.publicKey.export({ type: 'spki', format: 'pem' }))
    const app = await authApp(t, { AUTH_MODE: 'any', AUTH_API_KEYS: `clinic:${CLINIC_KEY}`, AUTH_JWT_PUBLIC_KEY_FILE: file,
      AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE })
    t.equal(app.config.auth.jwt?.algorithm, alg, `${alg} detected from the key`)
    t.same(await status(app, '/model', { authorization: `Bearer ${signJwt(claims(), alg, pair.privateKey)}` }), [200, undefined])
    const other = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' })
    t.same(await status(app, '/model', { authorization: `Bearer ${signJwt(claims(), alg, other.privateKey)}` }), [401, 'UNAUTHORIZED'],
      'signed by another key')
    t.same(await status(app, '/model', { authorization: `Bearer ${signJwt(claims(), 'HS256', SECRET)}` }), [401, 'UNAUTHORIZED'],
      'HS256 token refused when a public key is configured')
    t.same(await status(app, '/model', { 'x-api-key': CLINIC_KEY }), [200, undefined], 'API key also accepted in any mode')
  }
})

t.test('AUTH_MODE=any with both credentials: the API key decides; a token whose sub names an API key caller is its own caller', async (t) => {
  const env = { AUTH_MODE: 'any', AUTH_API_KEYS: `clinic:${CLINIC_KEY}`, AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: ISSUER, AUTH_JWT_AUDIENCE: AUDIENCE }
  const dataDir = await emptyPGliteDataDir(await mkdtemp(join(tmpdir(), 'kidney-auth-records-')))
  t.teardown(async () => await rm(dataDir, { recursive: true, force: true }))
  const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir, api: true }, { auth: loadConfig(env).auth, rateLimit: { max: 0, windowMs: 1000 } })
  const impostor = `Bearer ${signJwt(claims({ sub: 'api-key:clinic' }), 'HS256', SECRET)}`
  t.same(await status(app, '/model', { 'x-api-key': 'clinic-0123456789abcdeX', authorization: impostor }), [401, 'UNAUTHORIZED'], 'a wrong key is not rescued by a valid token')
  t.equal((await app.inject({ method: 'GET', url: '/model' })).json().message,
    'Authentication required: send a valid API key in the x-api-key header or a valid bearer token (Authorization: Bearer <token>).')
  const upload = fileUpload(await ctKidneyImage('test/stone'), 'slice.jpg')
  const answer = await app.inject({ method: 'POST', url: '/predict', payload: upload.payload, headers: { ...upload.headers, 'x-api-key': CLINIC_KEY, authorization: impostor } })
  t.equal(answer.statusCode, 200)
  const id: string = answer.json().id
  t.same(await status(app, `/predictions/${id}`, { 'x-api-key': CLINIC_KEY }), [200, undefined], 'recorded as the key\'s caller, not the token\'s')
  t.same(await status(app, `/predictions/${id}`, { authorization: impostor }), [404, 'PREDICTION_NOT_FOUND'], 'jwt:api-key:clinic is not api-key:clinic')
})

t.test('AUTH_API_KEY_HEADER naming a header that carries something else stops start-up; the service answered 401 to every request', async (t) => {
  const keys = { AUTH_API_KEYS: 'clinic:clinic-0123456789abcdef' }
  const jwt = { AUTH_JWT_SECRET: 'a-test-only-hs256-secret-of-at-least-32-bytes', AUTH_JWT_ISSUER: 'https://idp.example', AUTH_JWT_AUDIENCE: 'kidney' }
  for (const header of ['Host', 'content-type', 'x-request-id']) {
    t.match(configRefusal({ AUTH_MODE: 'api-key', ...keys, AUTH_API_KEY_HEADER: header }),
      `AUTH_API_KEY_HEADER=${header}: that header carries something else in every request, so no request could authenticate; use another, e.g. x-api-key`, header)
  }
  t.match(configRefusal({ AUTH_MODE: 'any', ...keys, ...jwt, AUTH_API_KEY_HEADER: 'Authorization' }), /AUTH_API_KEY_HEADER=Authorization: .*\(with AUTH_MODE=any, the bearer tokens\)/)
  t.equal(configRefusal({ AUTH_MODE: 'api-key', ...keys, AUTH_API_KEY_HEADER: 'authorization' }), 'accepted', 'with keys alone, Authorization carries nothing else')
  t.equal(configRefusal({ AUTH_MODE: 'none', AUTH_API_KEY_HEADER: 'host' }), 'accepted', 'not read with authentication off')
})
