import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { isPublicRoute } from '../app/auth.js'
import { CSP_DIRECTIVES_LEFT_OUT } from './helmet.js'
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
        { name: 'records', description: 'Recorded answers: read back by id, or listed with filters' },
        { name: 'studies', description: 'DICOM studies: STOW-RS upload and series/study results' },
        { name: 'service', description: 'Status, health and model metadata' }
      ],
      // Enforced only when AUTH_MODE is not `none`; either scheme is enough. Swagger UI's Authorize uses them.
      components: {
        securitySchemes: {
          apiKey: {
            type: 'apiKey',
            in: 'header',
            name: app.config.auth.apiKeyHeader,
            description: 'API key (AUTH_MODE=api-key or any). /predict* needs a key with the "predict" scope.'
          },
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'JWT (AUTH_MODE=jwt or any): issuer, audience and expiry checked; /predict* needs scope "predict".'
          }
        }
      },
      security: [{ apiKey: [] }, { bearerAuth: [] }]
    },
    // Probes never need credentials; an empty list overrides the document-wide requirement.
    transform: ({ schema, url }) => ({ schema: isPublicRoute(url, false) ? { ...schema, security: [] } : schema, url }),
    // Shared schemas registered with addSchema become named components (#/components/schemas/<$id>).
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) }
  })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: true,
    transformStaticCSP: (header: string) => header.replace(CSP_DIRECTIVES_LEFT_OUT, ''),
    // Not persistAuthorization: it kept the API key or token typed into Authorize in the browser's localStorage, in
    // clear, for the next person at a shared clinical workstation. Typed again after a reload, as on the web page.
    uiConfig: { persistAuthorization: false }
  })
}, { name: 'swagger', dependencies: ['config'] })
