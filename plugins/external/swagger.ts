import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { packageInfo } from '../../schemas/package-info.js'

/** The OpenAPI document is generated from the routes' TypeBox schemas; `npm run openapi` commits it. */
export default fp(async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Kidney stone detection API',
        description: 'Classifies a kidney CT slice as Normal (0) or Stone (1). Decision support, not a diagnosis.',
        version: packageInfo.version
      },
      tags: [
        { name: 'prediction', description: 'Classify CT images' },
        { name: 'service', description: 'Status, health and model metadata' }
      ]
    },
    // Shared schemas registered with addSchema become named components (#/components/schemas/<$id>).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
}, { name: 'swagger' })
