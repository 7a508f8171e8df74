import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { RateLimitedError } from '../app/errors.js'

/**
 * Per-client request budget (client = IP address, the proxy's forwarded one when TRUST_PROXY is on).
 * Liveness and readiness probes are exempt so that a busy client cannot get an instance marked dead.
 *
 * One global onRequest hook, not the plugin's per-route hooks: a route's own hooks run after every global one, so
 * authentication refused requests without credentials before they were counted, and unknown paths (no route) were
 * never counted. Both were unlimited, each refusal an audit event in the records database.
 */
export default fp(async (app) => {
  const { max, windowMs } = app.config.rateLimit
  if (max === 0) return
  await app.register(rateLimit, {
    global: false,
    max,
    timeWindow: windowMs,
    allowList: (request) => request.routeOptions.url?.startsWith('/health/') === true,
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after)
  })
  app.addHook('onRequest', app.rateLimit())
}, { name: 'rate-limit', dependencies: ['config', 'errors'] })
