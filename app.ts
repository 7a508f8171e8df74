import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { ajvFilePlugin } from '@fastify/multipart'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import configPlugin, { loadConfig, type AppConfig } from './plugins/app/config.js'
import errorsPlugin from './plugins/app/errors.js'
import modelPlugin, { type ClassifierLoader } from './plugins/app/classifier.js'
import metricsPlugin from './plugins/app/metrics.js'
import predictorPlugin from './plugins/app/predictor.js'
import uploadsPlugin from './plugins/app/uploads.js'
import helmetPlugin from './plugins/external/helmet.js'
import multipartPlugin from './plugins/external/multipart.js'
import swaggerPlugin from './plugins/external/swagger.js'
import healthRoutes from './routes/health.js'
import modelRoutes from './routes/model.js'
import metricsRoutes from './routes/metrics.js'
import predictRoutes from './routes/predict.js'
import rootRoutes from './routes/root.js'
import { sharedSchemas } from './schemas/index.js'

export interface AppOptions {
  /** Overrides on top of the environment (tests pass what they need). */
  config?: Partial<AppConfig>
  /** Replaces model loading (tests of the not-ready state). */
  loadClassifier?: ClassifierLoader
  logger?: FastifyServerOptions['logger']
}

export async function buildApp (options: AppOptions = {}): Promise<FastifyInstance> {
  const config: AppConfig = { ...loadConfig(), ...options.config }
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel },
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    ajv: { plugins: [ajvFilePlugin] }
  }).withTypeProvider<TypeBoxTypeProvider>()

  for (const schema of sharedSchemas) app.addSchema(schema)
  app.addHook('onSend', async (request, reply) => { reply.header('x-request-id', request.id) })

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(helmetPlugin)
  await app.register(multipartPlugin)
  await app.register(swaggerPlugin)

  await app.register(uploadsPlugin)
  await app.register(modelPlugin, { load: options.loadClassifier })
  await app.register(metricsPlugin)
  await app.register(predictorPlugin)

  await app.register(rootRoutes)
  await app.register(healthRoutes)
  await app.register(modelRoutes)
  await app.register(metricsRoutes)
  await app.register(predictRoutes)
  return app
}
