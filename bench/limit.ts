import { performance } from 'node:perf_hooks'
import { Classifier } from '../inference/classifier.js'
import type { AppConfig } from '../plugins/app/config.js'

export interface LimitResult {
  batchSize: number
  imagesPerSecond: number
  images: number
  /** CPU time this process used per image while measuring (all threads: libvips, onnxruntime, JavaScript). */
  cpuMsPerImage: number
}

/**
 * The in-process ceiling: the service's own Classifier (decode + preprocess + onnxruntime, same thread settings),
 * no HTTP, kept saturated with enough images in flight to fill batches of `batchSize`.
 */
export async function measureLimit (config: AppConfig, images: Buffer[], batchSize: number, seconds: number): Promise<LimitResult> {
  const classifier = await Classifier.load(config.modelPath, {
    maxPixels: config.maxPixels,
    intraOpThreads: config.intraOpThreads,
    interOpThreads: config.interOpThreads,
    graphOptimization: config.graphOptimization,
    maxBatchSize: batchSize,
    maxDelayUs: config.batchMaxDelayUs,
    maxQueue: 4 * batchSize + 4 * config.sharpConcurrency,
    sharpConcurrency: config.sharpConcurrency
  })
  try {
    await classifier.warmUp()
    const inFlight = 2 * batchSize + 2 * config.sharpConcurrency
    let next = 0
    const runFor = async (ms: number): Promise<number> => {
      const until = performance.now() + ms
      let done = 0
      await Promise.all(Array.from({ length: inFlight }, async () => {
        while (performance.now() < until) {
          await classifier.classify(images[next++ % images.length])
          done++
        }
      }))
      return done
    }
    await runFor(1000)
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    const done = await runFor(seconds * 1000)
    const cpu = process.cpuUsage(cpuBefore)
    return {
      batchSize,
      images: done,
      imagesPerSecond: done / ((performance.now() - started) / 1000),
      cpuMsPerImage: (cpu.user + cpu.system) / 1000 / done
    }
  } finally {
    await classifier.close()
  }
}
