import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { ajvFilePlugin } from '@fastify/multipart'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import configPlugin, { loadConfig, type AppConfig } from './plugins/app/config.js'
import authPlugin from './plugins/app/auth.js'
import deadlinePlugin from './plugins/app/deadline.js'
import dicomIntakePlugin from './plugins/app/dicom-intake.js'
import dicomNodePlugin from './plugins/app/dicom-node.js'
import fhirPushPlugin from './plugins/app/fhir-push.js'
import errorsPlugin, { clientErrorHandler, frameworkErrorHandler } from './plugins/app/errors.js'
import expectContinuePlugin from './plugins/app/expect-continue.js'
import inflightPlugin from './plugins/app/inflight.js'
import livenessPlugin from './plugins/app/liveness.js'
import modelPlugin, { type ClassifierLoader } from './plugins/app/classifier.js'
import metricsPlugin from './plugins/app/metrics.js'
import recordsPlugin from './plugins/app/records.js'
import auditPlugin from './plugins/app/audit.js'
import batchPredictorPlugin from './plugins/app/batch-predictor.js'
import predictorPlugin from './plugins/app/predictor.js'
import readinessPlugin from './plugins/app/readiness.js'
import shutdownPlugin from './plugins/app/shutdown.js'
import studiesPlugin from './plugins/app/studies.js'
import uploadsPlugin from './plugins/app/uploads.js'
import corsPlugin from './plugins/external/cors.js'
import helmetPlugin from './plugins/external/helmet.js'
import multipartPlugin from './plugins/external/multipart.js'
import rateLimitPlugin from './plugins/external/rate-limit.js'
import swaggerPlugin from './plugins/external/swagger.js'
import underPressurePlugin from './plugins/external/under-pressure.js'
import auditEventsRoutes from './routes/audit-events.js'
import healthRoutes from './routes/health.js'
import modelRoutes from './routes/model.js'
import metricsRoutes from './routes/metrics.js'
import predictRoutes from './routes/predict.js'
import predictBatchRoutes from './routes/predict-batch.js'
import overlayRoutes from './routes/overlay.js'
import predictionsRoutes from './routes/predictions.js'
import rootRoutes from './routes/root.js'
import studiesRoutes from './routes/studies.js'
import stowRoutes from './routes/stow.js'
import webAppRoutes from './routes/web-app.js'
import { sharedSchemas } from './schemas/index.js'

export interface AppOptions {
  /** Overrides on top of the environment (tests pass what they need). */
  config?: Partial<AppConfig>
  /** Replaces model loading (tests of the not-ready state). */
  loadClassifier?: ClassifierLoader
  logger?: FastifyServerOptions['logger']
}

/** A caller's own request id: a trace or proxy id is a few dozen visible ASCII characters (a UUID, a W3C traceparent). */
const CALLER_REQUEST_ID = /^[\x21-\x7e]{1,128}$/

/**
 * The request's id, in every log line of the request and in its records and audit events: the caller's
 * x-request-id when it is a plain identifier, else a new UUID. Any value was kept, up to Node's 16 kB header limit,
 * and chosen by clients without credentials too, for every refusal's audit event.
 */
function requestId (header: string | string[] | undefined): string {
  return typeof header === 'string' && CALLER_REQUEST_ID.test(header) ? header : randomUUID()
}

/**
 * Where a logged object can hold the request's credentials: its headers, wherever they are logged. @fastify/multipart
 * logs the options it gives busboy at trace, the request headers among them, so every upload's API key and bearer
 * token reached the log in clear at LOG_LEVEL=trace.
 */
function credentialPaths (config: AppConfig): { paths: string[], censor: string } {
  const headers = ['authorization', config.auth.apiKeyHeader.toLowerCase()].map((name) => `headers["${name}"]`)
  return { paths: [...headers, ...headers.map((path) => `*.${path}`)], censor: '[redacted]' }
}

export async function buildApp (options: AppOptions = {}): Promise<FastifyInstance> {
  const config: AppConfig = { ...loadConfig(), ...options.config }
  const app = Fastify({
    logger: options.logger === false ? false : { level: config.logLevel, redact: credentialPaths(config), ...(typeof options.logger === 'object' ? options.logger : {}) },
    // The caller's x-request-id, read by requestId below, not by Fastify's requestIdHeader, which takes any value.
    requestIdHeader: false,
    genReqId: (request) => requestId(request.headers['x-request-id']),
    ajv: { plugins: [ajvFilePlugin] },
    trustProxy: config.trustProxy,
    bodyLimit: config.bodyLimitBytes,
    // Slow-loris defence: the headers, then the whole request, must arrive within these times.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, config.headersTimeoutMs)
    },
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
    // plugins/app/shutdown.ts answers requests that arrive while closing, with the typed body.
    return503OnClosing: false
  }).withTypeProvider<TypeBoxTypeProvider>()

  for (const schema of sharedSchemas) app.addSchema(schema)
  app.addHook('onSend', async (request, reply) => { reply.header('x-request-id', request.id) })

  await app.register(configPlugin, { config })
  await app.register(errorsPlugin)
  await app.register(expectContinuePlugin)
  // Security headers first, so that every answer carries them, refusals of the hooks below included.
  await app.register(helmetPlugin)
  await app.register(inflightPlugin)
  await app.register(livenessPlugin)
  // CORS headers next, so that a browser can read every refusal below (else it sees a network error).
  await app.register(corsPlugin)
  // Cheapest refusals first, all before any body is read: closing, overload, rate, identity.
  await app.register(shutdownPlugin)
  await app.register(deadlinePlugin)
  await app.register(underPressurePlugin)
  await app.register(rateLimitPlugin)
  await app.register(authPlugin)
  await app.register(multipartPlugin)
  await app.register(swaggerPlugin)

  await app.register(uploadsPlugin)
  await app.register(modelPlugin, { load: options.loadClassifier })
  await app.register(metricsPlugin)
  await app.register(recordsPlugin)
  await app.register(auditPlugin)
  await app.register(studiesPlugin)
  await app.register(fhirPushPlugin)
  await app.register(predictorPlugin)
  await app.register(batchPredictorPlugin)
  await app.register(dicomIntakePlugin)
  await app.register(dicomNodePlugin)
  await app.register(readinessPlugin)

  await app.register(rootRoutes)
  await app.register(healthRoutes)
  await app.register(modelRoutes)
  await app.register(metricsRoutes)
  await app.register(predictRoutes)
  await app.register(predictBatchRoutes)
  await app.register(predictionsRoutes)
  await app.register(auditEventsRoutes)
  await app.register(overlayRoutes)
  await app.register(webAppRoutes)
  await app.register(studiesRoutes)
  await app.register(stowRoutes)
  return app
}
