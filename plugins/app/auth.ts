import { timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import { PREDICT_SCOPE, sha256, type ApiKey, type AuthConfig, type JwtVerification } from './auth-config.js'
import { AuthenticationError, ForbiddenError } from './errors.js'

export interface Principal {
  kind: 'api-key' | 'jwt'
  /** The API key's name or the token's `sub`: who made the request, for logs. */
  name: string
  scopes: string[]
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal
  }
}

/**
 * Routes reachable without credentials: probes and the web page's static files (no data in them; the page sends the
 * credentials typed into it with every API call) always, the docs unless AUTH_DOCS=protected, the metrics with
 * AUTH_METRICS=public (for scrapers that cannot send an API key header, on a network only they reach).
 */
export function isPublicRoute (routeUrl: string | undefined, docsPublic: boolean, metricsPublic = false): boolean {
  if (routeUrl === undefined) return false
  return routeUrl.startsWith('/health/') || routeUrl === '/app' || routeUrl.startsWith('/app/') || (docsPublic && (routeUrl === '/docs' || routeUrl.startsWith('/docs/'))) ||
    (metricsPublic && routeUrl === '/metrics')
}

/** Routes that classify: /predict, /predict/batch and STOW-RS (POST /studies and POST /studies/{uid}; GET reads a study). */
export function needsPredictScope (method: string, routeUrl: string | undefined): boolean {
  return routeUrl === '/predict' || routeUrl?.startsWith('/predict/') === true || (method === 'POST' && routeUrl?.startsWith('/studies') === true)
}

/** Compares the presented key's hash with every configured hash, without stopping at the first match. */
export function matchApiKey (keys: ApiKey[], presented: string): ApiKey | undefined {
  const digest = sha256(presented)
  let match: ApiKey | undefined
  for (const key of keys) {
    if (timingSafeEqual(digest, key.sha256)) match = key
  }
  return match
}

/**
 * The token's scopes, from `claim` or else `scope`, then `scp`. `claim` is a claim's name, else a dotted path into
 * one (realm_access.roles): the name is tried first, since a namespaced claim (Auth0 requires custom claims named
 * by a URL, https://hospital.example/scopes) has dots of its own, and read as a path it named nothing.
 */
export function scopesOf (payload: Record<string, unknown>, claim?: string): string[] {
  const value = claim === undefined
    ? payload.scope ?? payload.scp
    : Object.hasOwn(payload, claim)
      ? payload[claim]
      : claim.split('.').reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined), payload)
  return scopeList(value)
}

function scopeList (claim: unknown): string[] {
  if (typeof claim === 'string') return claim.split(' ').filter((scope) => scope !== '')
  if (Array.isArray(claim)) return claim.filter((scope): scope is string => typeof scope === 'string')
  return []
}

const JWT_MESSAGES: Record<string, string> = {
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: 'The bearer token has expired.',
  FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED: 'The bearer token was not issued for this service.'
}

/**
 * @fastify/jwt (fast-jwt) checks `exp` and `nbf` but never `iat`: a token issued in the future, by an issuer whose
 * clock runs ahead or one minted to outlive its issuer's key rotation, passed. Refused beyond the same tolerance.
 */
function checkIssuedAt (iat: unknown, clockToleranceS: number): void {
  if (iat === undefined) return
  if (typeof iat !== 'number' || !Number.isFinite(iat)) {
    throw new AuthenticationError('The bearer token\'s issue time (iat) is not a number of seconds.')
  }
  if (iat * 1000 > Date.now() + clockToleranceS * 1000) {
    // An iat in microseconds (an issuer's unit mix-up) is past the last date a Date holds: toISOString() would throw.
    const issued = new Date(iat * 1000)
    const when = Number.isNaN(issued.getTime()) ? `${iat} s` : issued.toISOString()
    throw new AuthenticationError(`The bearer token was issued in the future (iat ${when}), beyond the clock tolerance of ${clockToleranceS} s.`)
  }
}

async function verifyBearer (request: FastifyRequest, jwtConfig: JwtVerification): Promise<Principal> {
  let payload: Record<string, unknown>
  try {
    payload = await request.jwtVerify<Record<string, unknown>>()
  } catch (error) {
    const code = (error as { code?: string }).code ?? ''
    throw new AuthenticationError(JWT_MESSAGES[code] ?? 'The bearer token is invalid.')
  }
  checkIssuedAt(payload.iat, jwtConfig.clockToleranceS)
  // The subject is whose records a caller reads (`jwt:<sub>`). Tokens without one (an identity provider's
  // client-credentials tokens may leave it out) all became the one caller `jwt:jwt`, and read each other's records.
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw new AuthenticationError('The bearer token names no subject (sub): the service keeps records per subject.')
  }
  if (payload.sub.includes('\0')) {
    throw new AuthenticationError('The bearer token\'s subject (sub) contains a NUL character, which the records of its requests cannot hold.')
  }
  // A lone UTF-16 surrogate (JSON's "\ud800") has no UTF-8 form: the record's write was refused (SQLSTATE 22P02), so
  // every request of such a token was 503 'retry' and a records write failure, like a NUL.
  if (Buffer.from(payload.sub, 'utf8').toString('utf8') !== payload.sub) {
    throw new AuthenticationError('The bearer token\'s subject (sub) contains a lone UTF-16 surrogate, which the records of its requests cannot hold.')
  }
  return { kind: 'jwt', name: payload.sub, scopes: scopesOf(payload, jwtConfig.scopeClaim) }
}

async function authenticate (request: FastifyRequest, auth: AuthConfig): Promise<Principal> {
  const apiKey = request.headers[auth.apiKeyHeader]
  if (typeof apiKey === 'string' && auth.apiKeys.length > 0) {
    const key = matchApiKey(auth.apiKeys, apiKey)
    if (key === undefined) throw new AuthenticationError('The API key is not valid.')
    return { kind: 'api-key', name: key.name, scopes: key.scopes }
  }
  if (auth.jwt !== undefined && request.headers.authorization?.toLowerCase().startsWith('bearer ') === true) {
    return await verifyBearer(request, auth.jwt)
  }
  throw new AuthenticationError(`Authentication required: send ${acceptedCredentials(auth)}.`)
}

/** What this instance accepts, as authenticate() reads it: an API key told to send a token would never get in. */
function acceptedCredentials (auth: AuthConfig): string {
  const key = `a valid API key in the ${auth.apiKeyHeader} header`
  const token = 'a valid bearer token (Authorization: Bearer <token>)'
  if (auth.apiKeys.length === 0) return token
  return auth.jwt === undefined ? key : `${key} or ${token}`
}

/**
 * Off unless AUTH_MODE says otherwise. When on, checks every request in onRequest, before any body is read, so
 * an unauthenticated upload is refused without being parsed: 401 without valid credentials, 403 for /predict*
 * without the `predict` scope. CORS preflights pass through, since browsers never send credentials with them.
 */
export default fp(async (app) => {
  const auth = app.config.auth
  if (auth.mode === 'none') return
  if (auth.jwt !== undefined) {
    const { algorithm, key, issuer, audience, clockToleranceS } = auth.jwt
    await app.register(jwt, {
      secret: algorithm === 'HS256' ? key : { public: key },
      verify: {
        algorithms: [algorithm],
        allowedIss: issuer,
        allowedAud: audience,
        requiredClaims: ['exp', 'iss', 'aud'],
        clockTolerance: clockToleranceS * 1000
      }
    })
  }
  app.decorateRequest('principal', undefined)
  app.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url
    if (request.method === 'OPTIONS' || isPublicRoute(route, auth.docsPublic, auth.metricsPublic)) return
    try {
      request.principal = await authenticate(request, auth)
    } catch (error) {
      if (auth.jwt !== undefined) reply.header('WWW-Authenticate', 'Bearer')
      throw error
    }
    if (needsPredictScope(request.method, route) && !request.principal.scopes.includes(PREDICT_SCOPE)) {
      throw new ForbiddenError(PREDICT_SCOPE)
    }
  })
}, { name: 'auth', dependencies: ['config', 'errors'] })
