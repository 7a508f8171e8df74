import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import fastifyStatic from '@fastify/static'

const PUBLIC_DIR = fileURLToPath(new URL('../web/public/', import.meta.url))

/**
 * The clinicians' page at /app/ (web/: docs/web-app.md): static files only, no data in them, so served without
 * credentials; every request the page makes carries the key or token typed into it. Its script is a file (no inline
 * script), so it runs under helmet's default Content-Security-Policy.
 */
const webApp: FastifyPluginAsync = async (app) => {
  // Swagger UI registers @fastify/static too: the reply decorators exist once.
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/app/', decorateReply: false, index: ['index.html'], cacheControl: true, maxAge: 0 })
  app.get('/app', { schema: { hide: true } }, async (_request, reply) => await reply.redirect('/app/', 301))
}

export default webApp
