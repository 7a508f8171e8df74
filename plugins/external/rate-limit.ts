import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { RateLimitedError } from '../app/errors.js'

/**
 * Per-client request budget (client = IP address, the proxy's forwarded one when TRUST_PROXY is on).
 * Liveness and readiness probes are exempt so that a busy client cannot get an instance marked dead.
 */
export default fp(async (app) => {
  const { max, windowMs } = app.config.rateLimit
  if (max === 0) return
  await app.register(rateLimit, {
    max,
    timeWindow: windowMs,
    allowList: (request) => request.routeOptions.url?.startsWith('/health/') === true,
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after)
  })
}, { name: 'rate-limit', dependencies: ['config', 'errors'] })
