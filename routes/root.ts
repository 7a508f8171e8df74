import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { StatusSchema } from '../schemas/model.js'
import { packageInfo } from '../schemas/package-info.js'
import { refTo } from '../schemas/ref.js'

const root: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/', {
    schema: { tags: ['service'], summary: 'Service status', response: { 200: refTo(StatusSchema) } }
  }, async () => {
    const spec = app.model.state === 'ready' ? app.model.get().spec : undefined
    return {
      service: packageInfo.name,
      version: packageInfo.version,
      model: spec === undefined ? null : { name: spec.name, version: spec.version },
      status: app.model.state
    }
  })
}

export default root
