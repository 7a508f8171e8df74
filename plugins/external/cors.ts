import fp from 'fastify-plugin'
import cors from '@fastify/cors'

/**
 * Browsers may call the API only from the origins in CORS_ORIGINS (none by default; '*' for any). Preflight
 * requests are answered here, before authentication, because browsers never send credentials with them.
 */
export default fp(async (app) => {
  const origins = app.config.corsOrigins
  if (origins.length === 0) return
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', app.config.auth.apiKeyHeader],
    exposedHeaders: ['server-timing', 'x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining',
      'x-ratelimit-reset'],
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config'] })
