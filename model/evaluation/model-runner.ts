import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { DecodedImage } from '../../inference/decode.js'
import { evidenceMap, type EvidenceMap } from '../../inference/findings.js'
import { readModelSpec, sidecarPathFor, type ModelSpec } from '../../inference/model-spec.js'
import { toProbabilities } from '../../inference/postprocess.js'
import { resizeForModel } from '../../inference/preprocess.js'
import { ModelSession } from '../../inference/session.js'

/** Stone-minus-Normal class activation map, row-major, at the network's last feature resolution. */
export type ActivationMap = EvidenceMap

export interface SlicePrediction {
  /** P(Stone) exactly as the service computes it (temperature softmax of the logits). */
  probability: number
  stoneMap: ActivationMap | undefined
  /** The 224x224 model input as uint8 pixels: what the thumbnail probe and the CAM overlays look at. */
  modelInput: Buffer
}

const BATCH_SIZE = 16
const CAM_OUTPUT = 'cam'

/**
 * Runs images through the service's own preprocessing (files: `decodeForModel`; in-painted images:
 * `resizeForModel`; then `toTensorData`), one shared onnxruntime session and the service's `toProbabilities`, in batches.
 * It differs from `Classifier.infer` only in also reading the `cam` output of the same inference.
 */
export class EvaluationModel {
  private constructor (
    readonly spec: ModelSpec,
    readonly modelSha256: string,
    private readonly session: ModelSession,
    private readonly logitsOutput: string,
    private readonly camOutput: string | undefined
  ) {}

  static async load (modelPath: string, threads = 2): Promise<EvaluationModel> {
    const spec = await readModelSpec(sidecarPathFor(modelPath))
    const positiveIndex = spec.classes.indexOf(spec.positiveClass)
    if (spec.classes.length !== 2 || positiveIndex < 0) {
      throw new Error(`model ${spec.name}: expected 2 classes including ${spec.positiveClass}`)
    }
    const sha256 = createHash('sha256').update(await readFile(modelPath)).digest('hex')
    const session = await ModelSession.create(modelPath, spec, {
      intraOpThreads: threads, interOpThreads: 1, graphOptimization: 'all'
    })
    const camOutput = session.outputNames.includes(CAM_OUTPUT) ? CAM_OUTPUT : undefined
    return new EvaluationModel(spec, sha256, session, session.outputNames[0], camOutput)
  }

  get positiveIndex (): number {
    return this.spec.classes.indexOf(this.spec.positiveClass)
  }

  /** Full-size decoded images (yildirim slices and their in-painted counterfactuals), resized by `resizeForModel`. */
  async predict (images: readonly DecodedImage[]): Promise<SlicePrediction[]> {
    return await this.predictModelInputs(await Promise.all(images.map(async (image) => await resizeForModel(image, this.spec))))
  }

  /** Model-size uint8 pixels, as `decodeForModel` (what the service runs on an upload) gives them. */
  async predictModelInputs (inputs: readonly Buffer[]): Promise<SlicePrediction[]> {
    const predictions: SlicePrediction[] = []
    for (let start = 0; start < inputs.length; start += BATCH_SIZE) {
      predictions.push(...await this.predictBatch(inputs.slice(start, start + BATCH_SIZE)))
    }
    return predictions
  }

  private async predictBatch (inputs: readonly Buffer[]): Promise<SlicePrediction[]> {
    const names = this.camOutput === undefined ? [this.logitsOutput] : [this.logitsOutput, this.camOutput]
    const { outputs } = await this.session.runOutputs(inputs, names)
    const logits = outputs[this.logitsOutput].values
    const rowWidth = logits.length / inputs.length
    const cam = this.camOutput === undefined ? undefined : outputs[this.camOutput]

    return inputs.map((modelInput, i) => {
      const probabilities = toProbabilities(logits.subarray(i * rowWidth, (i + 1) * rowWidth), this.spec)
      // Stone-minus-Normal per location: what the logits pool (mean for 1.x, max for 2.x) and what findings use.
      const stoneMap = cam === undefined ? undefined : evidenceMap(cam.values, cam.dims, i, this.positiveIndex)
      return { probability: probabilities[this.positiveIndex], stoneMap, modelInput }
    })
  }

  async close (): Promise<void> {
    await this.session.close()
  }
}
