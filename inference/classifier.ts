import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import pLimit, { type LimitFunction } from 'p-limit'
import { MicroBatcher, QueueFullError, type Batched, type BatchingOptions } from './batcher.js'
import { checkNotBlank } from './blank.js'
import { decodeImage, type DecodeOptions, type Reserve } from './decode.js'
import type { DicomInstance, DicomWindow } from './dicom/dataset.js'
import type { WindowSource } from './dicom/decode-dicom.js'
import { DicomDecoderPool, type DecoderPoolOptions } from './dicom/decoder-pool.js'
import { ABDOMEN_WINDOW } from './dicom/voi.js'
import type { ModelFailedError } from './errors.js'
import { evidenceMap, findingsOf, type Finding } from './findings.js'
import type { DecodedImage } from './image.js'
import { readModelSpec, sidecarPathFor, type ModelSpec } from './model-spec.js'
import { decide, toProbabilities, type Decision, type FrameDecision } from './postprocess.js'
import { prepareModelInput, type ModelInput } from './preprocess.js'
import { ModelSession, type SessionOptions } from './session.js'
import { sniffFormat } from './sniff.js'

export interface ClassifierOptions extends SessionOptions, Partial<BatchingOptions> {
  maxPixels: number
  /** DICOM only: overrides the model's input window (sidecar `input.window`, else abdomen 40/400, inference/dicom/voi.ts). */
  dicomWindow?: DicomWindow
  /** DICOM only: `model` (default) windows HU with the model's window whatever the file carries; `file` prefers the file's. */
  dicomWindowSource?: WindowSource
  /** DICOM only: Modality values classified (default CT; inference/dicom/image-kind.ts). */
  dicomModalities?: readonly string[]
  /** DICOM only: frames of one multi-frame object classified at most (default 1: such objects are refused). */
  dicomMaxFrames?: number
  /** Images decoded and resized at the same time (each one also uses libvips' own threads). */
  sharpConcurrency?: number
  /** The worker threads that decode DICOM (inference/dicom/decoder-pool.ts). */
  dicomDecoders?: DecoderPoolOptions
}

/** Defaults for the options the service's configuration sets explicitly (CLI and evaluation may omit them). */
export const DEFAULT_BATCHING: BatchingOptions & { sharpConcurrency: number } = {
  maxBatchSize: 8, maxDelayUs: 0, maxQueue: 64, sharpConcurrency: 2
}

/** Defaults of the DICOM decoder pool, as the service's configuration sets them (plugins/app/config.ts). */
export const DEFAULT_DICOM_DECODERS: DecoderPoolOptions = { workers: 2, maxQueue: 32, timeoutMs: 15_000, maxWorkerMemoryBytes: 256 * 1024 * 1024 }

/** Milliseconds per stage of one classification; the waits are time spent queued for a shared resource. */
export interface StageTimings {
  imageWait: number
  /** Decode and resize to the model's input size (one libvips pipeline for JPEG/PNG). */
  decode: number
  batchWait: number
  /** Normalisation of the batch that carried the image into the model's tensor. */
  preprocess: number
  /** The onnxruntime run of that batch. */
  inference: number
}

/**
 * One image's class activation maps as the model returned them: `values` holds `dims` = [classes, height, width]
 * float32 values, row-major, classes in the sidecar's order. A view into the batch's output, not a copy.
 */
export interface ActivationMaps {
  values: Float32Array
  dims: [number, number, number]
}

/** One image's class probabilities and activation maps, and the normalisation time of the batch that carried it. */
interface BatchRow {
  probabilities: number[]
  cam?: ActivationMaps
  preprocessMs: number
}

export interface Classification extends Decision {
  timings: StageTimings
  /** Absent when the model has no `cam` output. */
  cam?: ActivationMaps
  /**
   * Where the evidence for a Stone answer lies (inference/findings.ts), in the uploaded image's pixels; empty for
   * Normal. Absent, like `cam`, when the model has no `cam` output.
   */
  findings?: Finding[]
  /** The uploaded image's size after EXIF orientation (DICOM: Columns x Rows). */
  size: { width: number, height: number }
  /** A DICOM upload's Study/Series/SOP Instance UIDs and place in its series, from the parse that decoded it. */
  dicom?: DicomInstance
  /**
   * A multi-frame DICOM object: every frame's decision, in frame order. The object's own decision (and `cam`) is then
   * its most probably positive frame's: positive when any frame is. Series summaries take each frame as a slice
   * (inference/batch-summary.ts).
   */
  frames?: FrameDecision[]
}

export interface ClassifyOptions {
  /** Told the bytes the decoded image will hold before they are held; throws to refuse, or waits (the in-flight budget). */
  reserve?: Reserve
}

/** Told about every batch run and every finished classification (the service turns them into metrics). */
export interface InferenceObserver {
  batch?: (size: number, ms: number) => void
  classified?: (timings: StageTimings) => void
}

/**
 * Bytes in, decision out: decode -> preprocess -> micro-batched shared session -> probabilities -> class.
 * HTTP-free, so the service, the CLI, evaluation and the benchmark all run exactly this code.
 */
export class Classifier {
  private readonly batcher: MicroBatcher<Buffer, BatchRow>
  private readonly imageSlots: LimitFunction
  private readonly observers = new Set<InferenceObserver>()
  readonly dicomDecoders: DicomDecoderPool

  private constructor (
    readonly spec: ModelSpec,
    readonly modelSha256: string,
    private readonly session: ModelSession,
    private readonly options: ClassifierOptions
  ) {
    const defaults = DEFAULT_BATCHING
    this.batcher = new MicroBatcher((images) => this.runBatch(images), {
      maxBatchSize: options.maxBatchSize ?? defaults.maxBatchSize,
      maxDelayUs: options.maxDelayUs ?? defaults.maxDelayUs,
      maxQueue: options.maxQueue ?? defaults.maxQueue
    })
    this.imageSlots = pLimit(options.sharpConcurrency ?? defaults.sharpConcurrency)
    this.dicomDecoders = new DicomDecoderPool(options.dicomDecoders ?? DEFAULT_DICOM_DECODERS)
  }

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

  get batching (): BatchingOptions {
    return this.batcher.options
  }

  /** Set once the model runtime has stopped on its own; readiness reports it so the instance gets restarted. */
  get failure (): ModelFailedError | undefined {
    return this.session.failure
  }

  /** Images waiting for a decode slot, a DICOM decoder thread or a batch. */
  get queued (): number {
    return this.imageSlots.pendingCount + this.dicomDecoders.queued + this.batcher.queued
  }

  /** Registers an observer; returns the function that removes it. */
  observe (observer: InferenceObserver): () => void {
    this.observers.add(observer)
    return () => this.observers.delete(observer)
  }

  /** Upload bytes -> the model's input pixels (uint8, model size), exactly as `classify` computes them. */
  async decode (bytes: Buffer): Promise<Buffer> {
    return (await this.prepare(bytes, {})).pixels
  }

  /** The window (HU) that turns a DICOM file's HU into the model's grey levels. */
  get dicomWindow (): DicomWindow {
    return this.options.dicomWindow ?? this.spec.input.window ?? ABDOMEN_WINDOW
  }

  /**
   * Upload bytes -> the full-size 8-bit image the model's input is resized from (what an overlay is drawn on),
   * decoded with the options `classify` uses; a multi-frame DICOM object is refused (MULTI_FRAME_DICOM).
   */
  async decodeFullSize (bytes: Buffer, { reserve }: ClassifyOptions = {}, frame?: number): Promise<DecodedImage> {
    return await decodeImage(bytes, { ...this.decodeOptions(), reserve }, frame)
  }

  /** How `classify` and `decodeFullSize` decode: the same budgets, window and decoder threads. */
  private decodeOptions (): DecodeOptions {
    const { maxPixels, dicomWindowSource, dicomModalities, dicomMaxFrames } = this.options
    const { channels } = this.spec.input
    // A multi-frame object's decoded frames (one byte per pixel and channel) may take half of a decoder thread's memory.
    const dicomMaxTotalPixels = Math.floor(this.dicomDecoders.options.maxWorkerMemoryBytes / 2 / channels)
    return { channels, maxPixels, dicomWindow: this.dicomWindow, dicomWindowSource, dicomModalities, dicomMaxFrames, dicomMaxTotalPixels, dicomDecoder: this.dicomDecoders.decode }
  }

  private async prepare (bytes: Buffer, { reserve }: ClassifyOptions): Promise<ModelInput> {
    const input = await prepareModelInput(bytes, this.spec, { ...this.decodeOptions(), reserve })
    checkNotBlank(input.frames?.map((frame) => frame.pixels) ?? [input.pixels], input.size, this.spec.input)
    return input
  }

  /** One decoded image (`decode`'s model-size pixels) through the micro-batcher: its probabilities and how it got them. */
  async infer (pixels: Buffer): Promise<Batched<BatchRow>> {
    return await this.batcher.submit(pixels)
  }

  /** Blank images at batch size 1 and at the largest batch, so no real request pays for lazy initialisation. */
  async warmUp (): Promise<void> {
    const { width, height, channels } = this.spec.input
    const blank = Buffer.alloc(width * height * channels)
    await this.runBatch([blank])
    await this.runBatch(Array.from({ length: this.batcher.options.maxBatchSize }, () => blank))
  }

  async close (): Promise<void> {
    await this.batcher.drain()
    await this.session.close()
    await this.dicomDecoders.close()
  }

  async classify (bytes: Buffer, options: ClassifyOptions = {}): Promise<Classification> {
    // DICOM waits for its own decoder threads (a bounded queue), not for one of sharp's slots.
    const dicom = sniffFormat(bytes) === 'dicom'
    // Waiting uploads hold their bytes in memory, so this wait is bounded like the batch queue.
    if (!dicom && this.imageSlots.pendingCount >= this.batcher.options.maxQueue) {
      throw new QueueFullError(this.batcher.options.maxQueue, 1)
    }
    const submitted = performance.now()
    const decode = async (): Promise<{ input: ModelInput, imageWait: number, decodeMs: number }> => {
      const started = performance.now()
      const input = await this.prepare(bytes, options)
      return { input, imageWait: started - submitted, decodeMs: performance.now() - started }
    }
    const { input, imageWait, decodeMs } = dicom ? await decode() : await this.imageSlots(decode)
    const frames = input.frames ?? [{ pixels: input.pixels }]
    const runs = await this.inferAll(frames.map((frame) => frame.pixels))
    const decisions = runs.map(({ result }) => decide(result.probabilities, this.spec))
    const positive = this.spec.positiveClass
    const chosen = decisions.reduce((best, decision, i) => decision.probabilities[positive] > decisions[best].probabilities[positive] ? i : best, 0)
    const { result } = runs[chosen]
    const sum = (ms: (run: Batched<BatchRow>) => number): number => runs.reduce((total, run) => total + ms(run), 0)
    const preprocess = sum((run) => run.result.preprocessMs)
    const timings = { imageWait, decode: decodeMs, batchWait: sum((run) => run.waitMs), preprocess, inference: sum((run) => run.runMs) - preprocess }
    for (const observer of this.observers) observer.classified?.(timings)
    const decision = decisions[chosen]
    return {
      ...decision,
      timings,
      size: input.size,
      ...(result.cam === undefined ? {} : { cam: result.cam, findings: this.findings(result.cam, decision, input.size) }),
      ...(input.dicom === undefined ? {} : { dicom: input.dicom }),
      ...(input.frames === undefined
        ? {}
        : { frames: decisions.map((frameDecision, i) => ({ frame: i + 1, ...frameDecision, ...(frames[i].slicePosition === undefined ? {} : { slicePosition: frames[i].slicePosition }) })) })
    }
  }

  /** The findings of one image's activation maps; a map that is not [2, h, w] has none to give. */
  private findings (cam: ActivationMaps, decision: Decision, size: { width: number, height: number }): Finding[] | undefined {
    if (cam.dims[0] !== 2) return undefined
    const { spec } = this
    const map = evidenceMap(cam.values, [1, ...cam.dims], 0, spec.classes.indexOf(spec.positiveClass))
    return findingsOf(map, { isStone: decision.prediction === spec.positiveClass, original: size, input: spec.input, temperature: spec.temperature })
  }

  /** Images through the micro-batcher, a batch's worth at a time: a multi-frame object never floods its queue. */
  private async inferAll (images: Buffer[]): Promise<Array<Batched<BatchRow>>> {
    const runs: Array<Batched<BatchRow>> = []
    const size = this.batcher.options.maxBatchSize
    for (let start = 0; start < images.length; start += size) {
      runs.push(...await Promise.all(images.slice(start, start + size).map(async (image) => await this.infer(image))))
    }
    return runs
  }

  private async runBatch (images: Buffer[]): Promise<BatchRow[]> {
    const started = performance.now()
    const { outputs: { values, width, cam }, preprocessMs } = await this.session.run(images)
    const [, classes, height, mapWidth] = cam?.dims ?? []
    const camSize = classes * height * mapWidth
    const rows = images.map((_, i): BatchRow => ({
      probabilities: toProbabilities(values.subarray(i * width, (i + 1) * width), this.spec),
      ...(cam === undefined ? {} : { cam: { values: cam.values.subarray(i * camSize, (i + 1) * camSize), dims: [classes, height, mapWidth] } }),
      preprocessMs
    }))
    const ms = performance.now() - started
    for (const observer of this.observers) observer.batch?.(images.length, ms)
    return rows
  }
}
