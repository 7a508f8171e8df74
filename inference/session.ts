import * as ort from 'onnxruntime-node'
import type { ModelSpec } from './model-spec.js'

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all'

export interface SessionOptions {
  intraOpThreads: number
  interOpThreads: number
  graphOptimization: GraphOptimizationLevel
}

/**
 * One onnxruntime InferenceSession, created once and reused for every call: recreating sessions leaks
 * memory in onnxruntime-node. Input and output names are read from the model, not assumed.
 */
export class ModelSession {
  private constructor (
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelSpec,
    readonly inputName: string,
    readonly outputName: string
  ) {}

  static async create (onnxPath: string, spec: ModelSpec, options: SessionOptions): Promise<ModelSession> {
    const session = await ort.InferenceSession.create(onnxPath, {
      intraOpNumThreads: options.intraOpThreads,
      interOpNumThreads: options.interOpThreads,
      graphOptimizationLevel: options.graphOptimization,
      executionProviders: ['cpu']
    })
    return new ModelSession(session, spec, session.inputNames[0], session.outputNames[0])
  }

  /** Runs `count` preprocessed images laid end to end; returns the first output, `count` rows. */
  async run (batch: Float32Array, count: number): Promise<{ values: Float32Array, width: number }> {
    const { width, height, channels, layout } = this.spec.input
    const dims = layout === 'NCHW' ? [count, channels, height, width] : [count, height, width, channels]
    const feeds = { [this.inputName]: new ort.Tensor('float32', batch, dims) }
    const results = await this.session.run(feeds, [this.outputName])
    const output = results[this.outputName]
    const values = output.data as Float32Array
    return { values, width: values.length / count }
  }

  /**
   * Like `run`, but returns every requested output with its shape: evaluation reads the class activation
   * maps (`cam`) next to the logits from the same single inference.
   */
  async runOutputs (batch: Float32Array, count: number, names: readonly string[]): Promise<Record<string, { values: Float32Array, dims: readonly number[] }>> {
    const { width, height, channels, layout } = this.spec.input
    const dims = layout === 'NCHW' ? [count, channels, height, width] : [count, height, width, channels]
    const results = await this.session.run({ [this.inputName]: new ort.Tensor('float32', batch, dims) }, [...names])
    return Object.fromEntries(names.map((name) => [name, { values: results[name].data as Float32Array, dims: results[name].dims }]))
  }

  /** Every output the model declares, in graph order (the first is the one `run` returns). */
  get outputNames (): readonly string[] {
    return this.session.outputNames
  }

  async close (): Promise<void> {
    await this.session.release()
  }
}
