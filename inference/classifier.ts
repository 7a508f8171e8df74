import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { decodeImage, type DecodedImage } from './decode.js'
import { readModelSpec, sidecarPathFor, type ModelSpec } from './model-spec.js'
import { decide, toProbabilities, type Decision } from './postprocess.js'
import { preprocess } from './preprocess.js'
import { ModelSession, type SessionOptions } from './session.js'

export interface ClassifierOptions extends SessionOptions {
  maxPixels: number
}

export interface StageTimings {
  decode: number
  preprocess: number
  inference: number
}

export interface Classification extends Decision {
  timings: StageTimings
}

/**
 * Bytes in, decision out: decode -> preprocess -> one shared session -> probabilities -> class.
 * HTTP-free, so the service, the CLI, evaluation and the benchmark all run exactly this code.
 */
export class Classifier {
  private constructor (
    readonly spec: ModelSpec,
    readonly modelSha256: string,
    private readonly session: ModelSession,
    private readonly options: ClassifierOptions
  ) {}

  static async load (modelPath: string, options: ClassifierOptions): Promise<Classifier> {
    const spec = await readModelSpec(sidecarPathFor(modelPath))
    for (const name of ['Normal', 'Stone']) {
      if (!spec.classes.includes(name)) throw new Error(`model ${spec.name}: classes must include "${name}"`)
    }
    if (spec.classes.length !== 2) throw new Error(`model ${spec.name}: expected 2 classes, got ${spec.classes.length}`)
    const sha256 = createHash('sha256').update(await readFile(modelPath)).digest('hex')
    const session = await ModelSession.create(modelPath, spec, options)
    return new Classifier(spec, sha256, session, options)
  }

  async decode (bytes: Buffer): Promise<DecodedImage> {
    return await decodeImage(bytes, { channels: this.spec.input.channels, maxPixels: this.options.maxPixels })
  }

  async classify (bytes: Buffer): Promise<Classification> {
    const started = performance.now()
    const decoded = await this.decode(bytes)
    const decodedAt = performance.now()
    const decision = await this.classifyDecoded(decoded)
    return { ...decision, timings: { ...decision.timings, decode: decodedAt - started } }
  }

  async classifyDecoded (decoded: DecodedImage): Promise<Classification> {
    const started = performance.now()
    const tensor = await preprocess(decoded, this.spec)
    const preprocessedAt = performance.now()
    const [probabilities] = await this.infer(tensor, 1)
    const finished = performance.now()
    return {
      ...decide(probabilities, this.spec),
      timings: { decode: 0, preprocess: preprocessedAt - started, inference: finished - preprocessedAt }
    }
  }

  /** Runs `count` preprocessed images laid end to end and returns each one's class probabilities. */
  async infer (batch: Float32Array, count: number): Promise<number[][]> {
    const { values, width } = await this.session.run(batch, count)
    const rows: number[][] = []
    for (let i = 0; i < count; i++) rows.push(toProbabilities(values.subarray(i * width, (i + 1) * width), this.spec))
    return rows
  }

  /** One inference on a blank image, so the first real request does not pay for lazy initialisation. */
  async warmUp (): Promise<void> {
    const { width, height, channels } = this.spec.input
    await this.classifyDecoded({ pixels: Buffer.alloc(width * height * channels), width, height, channels })
  }

  async close (): Promise<void> {
    await this.session.close()
  }
}
