import fp from 'fastify-plugin'
import { Classifier } from '../../inference/classifier.js'
import { resolveServableModel } from '../../inference/keras/serve.js'
import { ModelNotReadyError, type ModelFailedError } from '../../inference/errors.js'
import type { AppConfig } from './config.js'

export type ModelState = 'loading' | 'ready' | 'failed'

export type ClassifierLoader = (config: AppConfig) => Promise<Classifier>

export const loadClassifier: ClassifierLoader = async (config) => {
  // A Keras .h5/.keras file is converted to ONNX once (cached by sha256); an .onnx path comes back as is.
  const { onnxPath } = await resolveServableModel(config.modelPath, {
    cacheDir: config.modelCacheDir,
    overrides: { classes: config.modelClasses, input: { scale: config.modelScale } }
  })
  const classifier = await Classifier.load(onnxPath, {
    maxPixels: config.maxPixels,
    dicomWindow: config.dicomWindow,
    dicomWindowSource: config.dicomWindowSource,
    dicomModalities: config.dicomModalities,
    dicomMaxFrames: config.dicomMaxFrames,
    intraOpThreads: config.intraOpThreads,
    interOpThreads: config.interOpThreads,
    graphOptimization: config.graphOptimization,
    maxBatchSize: config.batchMaxSize,
    maxDelayUs: config.batchMaxDelayUs,
    maxQueue: config.batchMaxQueue,
    sharpConcurrency: config.sharpConcurrency,
    dicomDecoders: config.dicomDecoders
  })
  await classifier.warmUp()
  return classifier
}

/**
 * Holds the one classifier of the process. Loading runs in the background so that liveness answers at
 * once; readiness and every model route wait for `state === 'ready'` (model loaded and warmed up).
 */
export class ModelHolder {
  private loadFailed = false
  private classifier?: Classifier
  readonly loaded: Promise<Classifier>

  constructor (load: Promise<Classifier>) {
    this.loaded = load.then((classifier) => {
      this.classifier = classifier
      return classifier
    }, (error: unknown) => {
      this.loadFailed = true
      throw error
    })
    // The failure is reported by whoever awaits `loaded` (server start-up); keep it from being unhandled here.
    this.loaded.catch(() => {})
  }

  /** 'failed' when loading failed, and also when the model runtime stopped after loading (see `failure`). */
  get state (): ModelState {
    if (this.classifier === undefined) return this.loadFailed ? 'failed' : 'loading'
    return this.failure === undefined ? 'ready' : 'failed'
  }

  /** Why the loaded model's runtime stopped (its worker crashed or exited), if it did. */
  get failure (): ModelFailedError | undefined {
    return this.classifier?.failure
  }

  get (): Classifier {
    if (this.classifier === undefined) throw new ModelNotReadyError()
    return this.classifier
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    model: ModelHolder
  }
}

export default fp<{ load?: ClassifierLoader }>(async (app, options) => {
  const holder = new ModelHolder((options.load ?? loadClassifier)(app.config))
  app.decorate('model', holder)
  app.addHook('onClose', async () => {
    const classifier = await holder.loaded.catch(() => undefined)
    await classifier?.close()
  })
}, { name: 'model', dependencies: ['config'] })
