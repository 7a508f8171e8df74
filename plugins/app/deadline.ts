import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { RequestTimeoutError, sendError } from './errors.js'

/**
 * A last-resort bound on every request: whatever it waits for (a multipart body its parser never finishes,
 * a stuck dependency), it is answered 408 with the typed body after HANDLER_TIMEOUT_MS and its connection is
 * closed, so that no request can hold a connection and its memory forever. Node's requestTimeout only covers
 * receiving the bytes, not a parser that stops consuming them. An answer sent by then that the client has not read
 * (Node has not handed it all to the system) is cut too: it kept its bytes (an overlay PNG of tens of MB) and its
 * share of the in-flight budget, released only when the response closes, for as long as the client did not read.
 */
export default fp(async (app) => {
  const timeoutMs = app.config.handlerTimeoutMs
  const timers = new WeakMap<object, NodeJS.Timeout>()
  app.addHook('onRequest', async (request, reply) => {
    timers.set(request, setTimeout(() => {
      if (reply.sent) {
        const socket = request.raw.socket
        if (reply.raw.writableFinished || socket === null || socket.destroyed) return
        request.log.warn({ timeoutMs }, 'the client did not read the answer in time; connection closed')
        socket.destroy()
        return
      }
      request.log.warn({ timeoutMs }, 'request deadline exceeded')
      reply.header('connection', 'close')
      sendError(reply, new RequestTimeoutError(`The request was not completed within ${timeoutMs} ms.`))
    }, timeoutMs))
  })
  const clear = async (request: object): Promise<void> => { clearTimeout(timers.get(request)) }
  app.addHook('onResponse', clear)
  app.addHook('onRequestAbort', clear)
}, { name: 'deadline', dependencies: ['config', 'errors'] })

/**
 * A route's work, for a request the deadline may answer 408 while it runs: app.predict and its kin then stop with
 * RequestTimeoutError, and there is nothing left to answer. The handler resolves with the reply already sent instead
 * of rejecting, which Fastify logged at error level with a stack ("Promise errored, but reply.sent = true was set"),
 * once for every request the deadline answered.
 */
export async function unlessAnswered<T> (reply: FastifyReply, work: () => Promise<T>): Promise<T | FastifyReply> {
  try {
    return await work()
  } catch (error) {
    if (reply.sent && error instanceof RequestTimeoutError) return reply
    throw error
  }
}

/**
 * Whether a request can no longer be given its answer: the deadline answered it 408, or its client closed the
 * connection (a script's own timeout, a user leaving the page). app.predict and its kin then keep nothing of it, as
 * nobody learns the ids: a client that sent a whole slice and hung up before its answer left a record and a kept
 * upload, and another with each retry.
 */
export function answerGone (request: FastifyRequest, reply: FastifyReply): () => boolean {
  return () => reply.sent || request.raw.socket?.destroyed === true
}
