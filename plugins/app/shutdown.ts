import fp from 'fastify-plugin'
import { ShuttingDownError } from './errors.js'

/**
 * Once closing starts, requests that arrive on kept-alive connections are turned away with a typed 503 and
 * `Connection: close` (instead of Fastify's untyped one), while requests already in flight run to completion.
 */
export default fp(async (app) => {
  let closing = false
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return
    reply.header('Connection', 'close')
    throw new ShuttingDownError()
  })
}, { name: 'shutdown', dependencies: ['errors'] })
