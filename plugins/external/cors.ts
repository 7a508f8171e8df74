import fp from 'fastify-plugin'
import cors from '@fastify/cors'
import { ServiceError } from '../../inference/errors.js'

/**
 * Browsers may call the API only from the origins in CORS_ORIGINS (none by default; '*' for any). Preflight
 * requests are answered here, before authentication, because browsers never send credentials with them. A
 * preflight that is malformed or comes from another origin is refused with the typed JSON body of every error
 * (400 INVALID_PREFLIGHT, 403 CORS_ORIGIN_NOT_ALLOWED), before @fastify/cors would answer in plain text.
 */
export default fp(async (app) => {
  const origins = app.config.corsOrigins
  if (origins.length === 0) return
  const anyOrigin = origins.includes('*')
  app.addHook('onRequest', async (request) => {
    if (request.method !== 'OPTIONS') return
    const origin = request.headers.origin
    if (origin === undefined || request.headers['access-control-request-method'] === undefined) {
      throw new ServiceError('INVALID_PREFLIGHT', 400, 'A CORS preflight needs the Origin and Access-Control-Request-Method headers.')
    }
    if (!anyOrigin && !origins.includes(origin)) {
      throw new ServiceError('CORS_ORIGIN_NOT_ALLOWED', 403, 'This origin may not call the API from a browser; the operator can add it to CORS_ORIGINS.')
    }
  })
  await app.register(cors, {
    origin: anyOrigin ? '*' : origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', app.config.auth.apiKeyHeader],
    exposedHeaders: ['server-timing', 'x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining',
      'x-ratelimit-reset'],
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config', 'errors'] })
