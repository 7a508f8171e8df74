import type { IncomingMessage } from 'node:http'
import fp from 'fastify-plugin'

/**
 * `Expect: 100-continue` gets its 100 Continue only when the body is about to be read (preParsing), after every
 * refusal that needs no body (shutdown, overload, rate limit, authentication, a wrong Accept). Node sent it on arrival
 * by itself, so a client without credentials was invited to send its 20 MiB upload before being refused. Until then
 * the answer carries `Connection: close`: a client told no holds its body back, so the connection cannot be reused.
 */
export default fp(async (app) => {
  const waiting = new WeakSet<IncomingMessage>()
  app.server.on('checkContinue', (request, response) => {
    waiting.add(request)
    response.setHeader('connection', 'close')
    app.server.emit('request', request, response)
  })
  app.addHook('preParsing', async (request, reply) => {
    if (!waiting.delete(request.raw)) return
    reply.raw.removeHeader('connection')
    reply.raw.writeContinue()
  })
}, { name: 'expect-continue' })
