import Fastify from 'fastify'
import fp from 'fastify-plugin'
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import { ServiceError } from '../../inference/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The CORS headers any answer to a browser request from `origin` carries (none without CORS_ORIGINS; no
     * Access-Control-Allow-Origin for an origin not in it), for the answers sent before any hook runs: the router's
     * own errors (plugins/app/errors.ts).
     */
    corsHeaders: (origin: string | undefined) => Promise<Record<string, string>>
  }
}

/**
 * @fastify/cors sets its headers in an onRequest hook, which the router's own errors (414 URI_TOO_LONG, 400 BAD_URL)
 * never reach. Their headers come from the same plugin with the same options, run on a Fastify instance of its own
 * that answers one GET: what a browser gets on any other answer, without restating the plugin's rules here.
 */
async function headersOnly (options: FastifyCorsOptions): Promise<{ headers: (origin: string | undefined) => Promise<Record<string, string>>, close: () => Promise<void> }> {
  const instance = Fastify({ logger: false })
  await instance.register(cors, options)
  instance.get('/', (_request, reply) => { reply.code(204).send() })
  await instance.ready()
  return {
    headers: async (origin) => {
      const res = await instance.inject({ method: 'GET', url: '/', headers: origin === undefined ? {} : { origin } })
      return Object.fromEntries(Object.entries(res.headers)
        .filter(([name]) => name.startsWith('access-control-') || name === 'vary')
        .map(([name, value]) => [name, String(value)]))
    },
    close: async () => { await instance.close() }
  }
}

/**
 * Browsers may call the API only from the origins in CORS_ORIGINS (none by default; '*' for any). Preflight
 * requests are answered here, before authentication, because browsers never send credentials with them. A
 * preflight that is malformed or comes from another origin is refused with the typed JSON body of every error
 * (400 INVALID_PREFLIGHT, 403 CORS_ORIGIN_NOT_ALLOWED), before @fastify/cors would answer in plain text.
 */
export default fp(async (app) => {
  const origins = app.config.corsOrigins
  if (origins.length === 0) {
    app.decorate('corsHeaders', async () => ({}))
    return
  }
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
  const options: FastifyCorsOptions = {
    origin: anyOrigin ? '*' : origins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'x-request-id', app.config.auth.apiKeyHeader],
    exposedHeaders: ['server-timing', 'x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining',
      'x-ratelimit-reset'],
    maxAge: 600
  }
  await app.register(cors, options)
  const routerErrors = await headersOnly(options)
  app.decorate('corsHeaders', routerErrors.headers)
  app.addHook('onClose', routerErrors.close)
}, { name: 'cors', dependencies: ['config', 'errors'] })
