import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'

// Helmet's defaults (strict CSP, no sniffing, HSTS, no referrer); Swagger UI sets its own CSP for /docs.
export default fp(async (app) => {
  await app.register(helmet, { global: true })
}, { name: 'helmet' })
