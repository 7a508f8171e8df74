import path from 'node:path'
import { performance } from 'node:perf_hooks'
import type { BootstrapOptions, Estimate } from './bootstrap.js'
import { classificationFigures, ctKidneyMetrics, type CtKidneyMetrics, type ScoredSlice } from './ct-kidney-metrics.js'
import { CT_KIDNEY_DIR, loadYildirimTestTriplets, modelInputOfFile, readCtKidneyManifest, type CtKidneyEntry, type StoneTriplet } from './datasets.js'
import { errorExamples, type ErrorKind } from './error-examples.js'
import { headlineFigures, type HeadlineFigure } from './headline.js'
import { EvaluationModel, type SlicePrediction } from './model-runner.js'
import { stoneEvidenceMetrics, type ScoredTriplet, type StoneEvidenceMetrics } from './stone-evidence-metrics.js'
import { predictProbability, selectProbe, thumbnailFeatures } from './thumbnail-probe.js'

export interface EvaluationOptions {
  modelPath: string
  /** 0 computes point estimates only (the regression test); intervals are then null in the JSON. */
  bootstrap: BootstrapOptions
  threads?: number
  log?: (message: string) => void
}

export interface ModelMetrics {
  model: {
    file: string
    name: string
    version: string
    sha256: string
    threshold: number
    temperature: number
    /** Validation figures the training pipeline recorded in the sidecar (val data only), for comparison. */
    validation: Record<string, number>
  }
  bootstrap: BootstrapOptions & { unit: string }
  headline: HeadlineFigure[]
  ctKidneyTest: CtKidneyMetrics
  stoneEvidence: StoneEvidenceMetrics
  thumbnailProbe: { trainImages: number, l2: number, valAuc: number, ctKidneyTestAuc: Estimate, yildirimPairsAuc: Estimate }
  /** The most confident mistakes of each kind, named so a reader can open the slices. */
  errors: ErrorKind[]
  runtimeSeconds: number
}

export interface EvaluatedSlice extends ScoredSlice {
  path: string
  prediction: SlicePrediction
  probeProbability: number
}

export interface EvaluatedTriplet {
  triplet: StoneTriplet
  original: SlicePrediction
  stoneRemoved: SlicePrediction
  decoy: SlicePrediction | undefined
  scores: ScoredTriplet
}

/** Everything the figures need besides the numbers: per-slice predictions with their model inputs and maps. */
export interface EvaluationRun {
  metrics: ModelMetrics
  ctKidneySlices: EvaluatedSlice[]
  triplets: EvaluatedTriplet[]
}

const CHUNK = 32

/** Maps in sequential chunks so that at most CHUNK decoded images are alive at a time. */
async function mapInChunks<T, R> (items: readonly T[], map: (chunk: T[]) => Promise<R[]>): Promise<R[]> {
  const results: R[] = []
  for (let start = 0; start < items.length; start += CHUNK) results.push(...await map(items.slice(start, start + CHUNK)))
  return results
}

/** Evaluates one ONNX model end to end; writes nothing, so the regression test can call it too. */
export async function evaluateModel (options: EvaluationOptions): Promise<EvaluationRun> {
  const started = performance.now()
  const elapsed = (): string => ((performance.now() - started) / 1000).toFixed(1)
  const log = (message: string): void => options.log?.(`[${elapsed()} s] ${message}`)
  const model = await EvaluationModel.load(options.modelPath, options.threads)
  const { spec } = model
  const channels = spec.input.channels
  try {
    const manifest = await readCtKidneyManifest()
    const modelInputsOf = async (entries: readonly CtKidneyEntry[]): Promise<Buffer[]> =>
      await Promise.all(entries.map(async (entry) => await modelInputOfFile(path.join(CT_KIDNEY_DIR, entry.path), spec)))

    const thumbnailsOf = async (entries: readonly CtKidneyEntry[]): Promise<Float64Array[]> => await mapInChunks(entries,
      async (chunk) => (await modelInputsOf(chunk)).map((pixels) => thumbnailFeatures(pixels, spec)))
    const train = manifest.filter((entry) => entry.split === 'train')
    const val = manifest.filter((entry) => entry.split === 'val')
    log(`thumbnail probe: fit on ${train.length} ct-kidney train slices, ridge chosen on ${val.length} val slices`)
    const probeSelection = selectProbe(
      { features: await thumbnailsOf(train), labels: train.map((entry) => entry.label) },
      { features: await thumbnailsOf(val), labels: val.map((entry) => entry.label) })
    const probe = probeSelection.model
    const probeOf = (prediction: SlicePrediction): number => predictProbability(probe, thumbnailFeatures(prediction.modelInput, spec))

    const test = manifest.filter((entry) => entry.split === 'test')
    log(`ct-kidney test: ${test.length} slices`)
    const testPredictions = await mapInChunks(test, async (chunk) => await model.predictModelInputs(await modelInputsOf(chunk)))
    const ctKidneySlices: EvaluatedSlice[] = test.map((entry, i) => ({
      path: entry.path,
      group: entry.group,
      plane: entry.plane,
      label: entry.label,
      probability: testPredictions[i].probability,
      prediction: testPredictions[i],
      probeProbability: probeOf(testPredictions[i])
    }))

    const tripletInputs = await loadYildirimTestTriplets(channels)
    log(`stone evidence: ${tripletInputs.length} held-out yildirim slices`)
    const triplets = await mapInChunks(tripletInputs, async (chunk) => {
      const originals = await model.predict(chunk.map((t) => t.original))
      const removed = await model.predict(chunk.map((t) => t.stoneRemoved))
      const decoys = await model.predict(chunk.flatMap((t) => (t.decoy === undefined ? [] : [t.decoy])))
      let nextDecoy = 0
      return chunk.map((triplet, i): EvaluatedTriplet => {
        const decoy = triplet.decoy === undefined ? undefined : decoys[nextDecoy++]
        return {
          triplet,
          original: originals[i],
          stoneRemoved: removed[i],
          decoy,
          scores: {
            group: triplet.group,
            original: originals[i].probability,
            stoneRemoved: removed[i].probability,
            decoy: decoy?.probability,
            probeOriginal: probeOf(originals[i]),
            probeStoneRemoved: probeOf(removed[i])
          }
        }
      })
    })

    const ctKidneyTest = ctKidneyMetrics(ctKidneySlices, spec.threshold, options.bootstrap)
    const stoneEvidence = stoneEvidenceMetrics(triplets.map((t) => t.scores), spec.threshold, options.bootstrap)
    const probeCtKidney = classificationFigures(
      ctKidneySlices.map((slice) => ({ ...slice, probability: slice.probeProbability })), 0.5, options.bootstrap)
    const metrics: ModelMetrics = {
      model: {
        file: path.basename(options.modelPath),
        name: spec.name,
        version: spec.version,
        sha256: model.modelSha256,
        threshold: spec.threshold,
        temperature: spec.temperature,
        validation: spec.metrics ?? {}
      },
      bootstrap: { ...options.bootstrap, unit: 'ct-kidney series (stratified by label) / yildirim export groups' },
      headline: headlineFigures(ctKidneyTest, stoneEvidence),
      ctKidneyTest,
      stoneEvidence,
      thumbnailProbe: {
        trainImages: train.length,
        l2: probeSelection.l2,
        valAuc: probeSelection.valAuc,
        ctKidneyTestAuc: probeCtKidney.rocAuc,
        yildirimPairsAuc: stoneEvidence.probePairsAuc
      },
      errors: errorExamples(ctKidneySlices,
        triplets.map(({ triplet, scores }) => ({ ...scores, image: triplet.image })), spec.threshold),
      runtimeSeconds: Math.round((performance.now() - started) / 100) / 10
    }
    log('metrics computed')
    return { metrics, ctKidneySlices, triplets }
  } finally {
    await model.close()
  }
}
