import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { findingsOf, type Finding } from '../../inference/findings.js'
import { readAllSlices, sliceFile, type SliceEntry } from '../data/slices.js'
import type { BootstrapOptions, Estimate } from './bootstrap.js'
import { classificationFigures, ctKidneyMetrics, type CtKidneyMetrics, type ScoredSlice } from './ct-kidney-metrics.js'
import { loadYildirimTestTriplets, modelInputOfFile, type StoneTriplet } from './datasets.js'
import { errorExamples, type ErrorKind } from './error-examples.js'
import { headlineFigures, type HeadlineFigure } from './headline.js'
import { EvaluationModel, type SlicePrediction } from './model-runner.js'
import { nonContrastMetrics, type NonContrastMetrics } from './noncontrast-metrics.js'
import { pointingGame, type PointedSlice, type PointingGameMetrics } from './pointing-game.js'
import { fitProbes, isNonContrastPair, meanGrey } from './probes.js'
import { stoneAddedMetrics, vascularMimicMetrics, type StoneAddedMetrics, type VascularMimicMetrics } from './stone-added-metrics.js'
import { heldOutPatches, stoneAddedTwins, vascularMimics, type EvaluatedTwin } from './stone-added-twins.js'
import { stoneEvidenceMetrics, type ScoredTriplet, type StoneEvidenceMetrics } from './stone-evidence-metrics.js'
import { stoneFreeMetrics, type StoneFreeMetrics } from './stone-free-series-metrics.js'
import { thumbnailFeatures } from './thumbnail-probe.js'

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
  /** ct-kidney-other test: cysts and tumours, no stone. */
  stoneFreeTest: StoneFreeMetrics
  nonContrast: NonContrastMetrics
  stoneEvidence: StoneEvidenceMetrics
  stoneAdded: StoneAddedMetrics
  vascularMimics: VascularMimicMetrics
  pointingGame: PointingGameMetrics
  thumbnailProbe: { trainImages: number, l2: number, valAuc: number, ctKidneyTestAuc: Estimate, yildirimPairsAuc: Estimate }
  /** The most confident mistakes of each kind, named so a reader can open the slices. */
  errors: ErrorKind[]
  runtimeSeconds: number
}

export interface EvaluatedSlice extends ScoredSlice {
  /** Relative to the shared folder's `data/` (e.g. `ct-kidney/test/stone/stone-0001.jpg`). */
  path: string
  finding: SliceEntry['finding']
  prediction: SlicePrediction
  probeProbability: number
}

export interface EvaluatedTriplet {
  triplet: StoneTriplet
  original: SlicePrediction
  stoneRemoved: SlicePrediction
  decoy: SlicePrediction | undefined
  scores: ScoredTriplet
  /** What the service would answer as findings for the original slice (empty when called Normal). */
  findings: Finding[]
}

/** A held-out yildirim original as the pointing game sees it: its stone boxes and the service's findings. */
export function pointedSlice (t: EvaluatedTriplet): PointedSlice {
  return { group: t.triplet.group, stones: t.triplet.stones, findings: t.findings, image: { width: t.triplet.original.width, height: t.triplet.original.height } }
}

/** Everything the figures need besides the numbers: per-slice predictions with their model inputs and maps. */
export interface EvaluationRun {
  metrics: ModelMetrics
  ctKidneySlices: EvaluatedSlice[]
  stoneFreeSlices: EvaluatedSlice[]
  /** ct-kidney axial Stone and cyst test slices, with the non-contrast probe's score and the mean grey level. */
  nonContrastSlices: Array<EvaluatedSlice & { meanGrey: number }>
  triplets: EvaluatedTriplet[]
  twins: EvaluatedTwin[]
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
  const threshold = spec.threshold
  try {
    const slices = await readAllSlices()
    const modelInputsOf = async (entries: readonly SliceEntry[]): Promise<Buffer[]> =>
      await Promise.all(entries.map(async (entry) => await modelInputOfFile(sliceFile(entry), spec)))
    log('thumbnail probes: fitted on train slices, ridge chosen on val slices')
    const probes = await fitProbes(slices, spec, async (entries) => await mapInChunks(entries,
      async (chunk) => (await modelInputsOf(chunk)).map((pixels) => thumbnailFeatures(pixels, spec))))

    const evaluate = async (entries: SliceEntry[]): Promise<EvaluatedSlice[]> => {
      const predictions = await mapInChunks(entries, async (chunk) => await model.predictModelInputs(await modelInputsOf(chunk)))
      return entries.map((entry, i) => ({
        path: `${entry.dataset}/${entry.path}`,
        group: entry.group,
        plane: entry.plane,
        label: entry.label,
        finding: entry.finding,
        probability: predictions[i].probability,
        prediction: predictions[i],
        probeProbability: probes.score(probes.ctKidney, predictions[i].modelInput)
      }))
    }
    const test = slices.filter((entry) => entry.split === 'test')
    log(`held-out slices: ${test.length} (ct-kidney and ct-kidney-other test)`)
    const heldOut = await evaluate(test)
    const ctKidneySlices = heldOut.filter((slice) => slice.path.startsWith('ct-kidney/'))
    const stoneFreeSlices = heldOut.filter((slice) => slice.path.startsWith('ct-kidney-other/'))
    const nonContrastSlices = test.flatMap((entry, i): EvaluationRun['nonContrastSlices'] => isNonContrastPair(entry)
      ? [{
          ...heldOut[i],
          probeProbability: probes.score(probes.nonContrast, heldOut[i].prediction.modelInput),
          meanGrey: meanGrey(heldOut[i].prediction.modelInput)
        }]
      : [])

    const tripletInputs = await loadYildirimTestTriplets(spec.input.channels)
    log(`stone evidence: ${tripletInputs.length} held-out yildirim slices`)
    const triplets = await mapInChunks(tripletInputs, async (chunk) => {
      const originals = await model.predict(chunk.map((t) => t.original))
      const removed = await model.predict(chunk.map((t) => t.stoneRemoved))
      const decoys = await model.predict(chunk.flatMap((t) => (t.decoy === undefined ? [] : [t.decoy])))
      let nextDecoy = 0
      return chunk.map((triplet, i): EvaluatedTriplet => {
        const decoy = triplet.decoy === undefined ? undefined : decoys[nextDecoy++]
        const original = originals[i]
        return {
          triplet,
          original,
          stoneRemoved: removed[i],
          decoy,
          scores: {
            group: triplet.group,
            original: original.probability,
            stoneRemoved: removed[i].probability,
            decoy: decoy?.probability,
            probeOriginal: probes.score(probes.ctKidney, original.modelInput),
            probeStoneRemoved: probes.score(probes.ctKidney, removed[i].modelInput)
          },
          findings: original.stoneMap === undefined
            ? []
            : findingsOf(original.stoneMap, {
              isStone: original.probability >= threshold,
              original: { width: triplet.original.width, height: triplet.original.height },
              input: spec.input,
              temperature: spec.temperature
            })
        }
      })
    })

    const stoneFreeBases = heldOut.filter((slice) => slice.label === 0 && slice.plane === 'axial')
    log(`stone-added twins: ${stoneFreeBases.length} stone-free axial test slices, stones from the held-out yildirim groups`)
    const patches = heldOutPatches(model, triplets)
    const twins = await stoneAddedTwins(model, stoneFreeBases, patches)
    const mimics = await vascularMimics(model, stoneFreeBases, patches)

    const ctKidneyTest = ctKidneyMetrics(ctKidneySlices, threshold, options.bootstrap)
    const stoneFreeTest = stoneFreeMetrics(stoneFreeSlices.map((slice) => ({ ...slice, finding: slice.finding as 'cyst' | 'tumor' })),
      threshold, options.bootstrap)
    const nonContrast = nonContrastMetrics(nonContrastSlices,
      { trainImages: probes.nonContrast.trainImages, l2: probes.nonContrast.l2, valAuc: probes.nonContrast.valAuc }, options.bootstrap)
    const stoneEvidence = stoneEvidenceMetrics(triplets.map((t) => t.scores), threshold, options.bootstrap)
    const stoneAdded = stoneAddedMetrics(twins.map((twin) => twin.scores), threshold, options.bootstrap)
    const mimicMetrics = vascularMimicMetrics(mimics, threshold, options.bootstrap)
    const pointing = pointingGame(triplets.filter((t) => t.scores.original >= threshold)
      .map(pointedSlice), options.bootstrap)
    const probeCtKidney = classificationFigures(
      ctKidneySlices.map((slice) => ({ ...slice, probability: slice.probeProbability })), 0.5, options.bootstrap)
    const metrics: ModelMetrics = {
      model: {
        file: path.basename(options.modelPath),
        name: spec.name,
        version: spec.version,
        sha256: model.modelSha256,
        threshold,
        temperature: spec.temperature,
        validation: spec.metrics ?? {}
      },
      bootstrap: { ...options.bootstrap, unit: 'series (stratified by label or finding) / yildirim export groups' },
      headline: headlineFigures({ ctKidney: ctKidneyTest, stoneFree: stoneFreeTest, nonContrast, stones: stoneEvidence, pointing }),
      ctKidneyTest,
      stoneFreeTest,
      nonContrast,
      stoneEvidence,
      stoneAdded,
      vascularMimics: mimicMetrics,
      pointingGame: pointing,
      thumbnailProbe: {
        trainImages: probes.ctKidney.trainImages,
        l2: probes.ctKidney.l2,
        valAuc: probes.ctKidney.valAuc,
        ctKidneyTestAuc: probeCtKidney.rocAuc,
        yildirimPairsAuc: stoneEvidence.probePairsAuc
      },
      errors: errorExamples([...ctKidneySlices, ...stoneFreeSlices],
        triplets.map(({ triplet, scores }) => ({ ...scores, image: triplet.image })), threshold),
      runtimeSeconds: Math.round((performance.now() - started) / 100) / 10
    }
    log('metrics computed')
    return { metrics, ctKidneySlices, stoneFreeSlices, nonContrastSlices, triplets, twins }
  } finally {
    await model.close()
  }
}
