import fp from 'fastify-plugin'
import fastifyHelmet from '@fastify/helmet'
import helmet from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'

// Helmet's defaults (strict CSP, no sniffing, HSTS, no referrer); Swagger UI sets its own CSP for /docs (without
// the same directive, plugins/external/swagger.ts). Not upgrade-insecure-requests: on a hospital network the service
// is often reached over plain HTTP at its address (http://10.1.2.3:3000/app/), and that directive made the browser
// fetch the page's own script and style sheet over HTTPS, which fails, so /app/ stayed at "Connecting to the service…"
// (chromium; 127.0.0.1 and localhost are exempt, which is why it went unseen). Behind TLS it adds nothing: every URL
// of the page is relative, so already HTTPS.
export const CSP_DIRECTIVES_LEFT_OUT = /\s*upgrade-insecure-requests;?/
const OPTIONS = { contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }

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
