import fp from 'fastify-plugin'
import fastifyHelmet from '@fastify/helmet'
import helmet from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'

// Helmet's defaults (strict CSP, no sniffing, HSTS, no referrer); Swagger UI sets its own CSP for /docs.
const OPTIONS = {}

const setHeaders = helmet(OPTIONS)

/**
 * The same headers for answers sent before any hook runs (the router's own errors, plugins/app/errors.ts), which
 * the plugin's onRequest hook never sees. Helmet's middleware only sets headers and calls back at once.
 */
export function setSecurityHeaders (request: IncomingMessage, response: ServerResponse): void {
  setHeaders(request, response, () => {})
}

export default fp(async (app) => {
  await app.register(fastifyHelmet, { global: true, ...OPTIONS })
}, { name: 'helmet' })
