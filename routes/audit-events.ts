import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { acceptOnly } from '../plugins/app/accept.js'
import { timeRange } from '../records/page.js'
import { errorResponses } from '../schemas/error.js'
import { AuditEventPageSchema, DEFAULT_PAGE_SIZE, AuditQuerySchema, RECORDS_ACCESS } from '../schemas/records.js'
import { refTo } from '../schemas/ref.js'

const auditEvents: FastifyPluginAsyncTypebox = async (app) => {
  const authOn = app.config.auth.mode !== 'none'

  app.get('/audit-events', {
    onRequest: acceptOnly(['application/json']),
    schema: {
      tags: ['records'],
      summary: 'Refused requests (the audit trail), newest first, filtered and paged by cursor',
      description: `${RECORDS_ACCESS} An event is written just after its refusal is sent, so the newest may appear a moment later. ` +
        'Follow `next` until it is absent. JSON only: an Accept without application/json is 406 NOT_ACCEPTABLE.',
      querystring: AuditQuerySchema,
      response: { 200: refTo(AuditEventPageSchema), ...errorResponses(400, 401, 403, 406, 503) }
    }
  }, async (request) => {
    const caller = app.records.readerScope(request, authOn)
    const { since, until, code, limit, cursor } = request.query
    const page = await app.records.listAuditEvents({
      caller,
      ...timeRange({ since, until }),
      code,
      limit: limit ?? DEFAULT_PAGE_SIZE,
      cursor
    })
    return {
      items: page.items.map((event) => ({ ...event, createdAt: event.createdAt.toISOString() })),
      ...(page.next === undefined ? {} : { next: page.next })
    }
  })
}

export default auditEvents
