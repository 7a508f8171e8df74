import type { Box } from '../../inference/letterbox.js'
import { seededRandom } from '../data/random.js'
import { addStoneTwins, addVascularMimic, MIMIC_SEED, patchPairs, type PatchPair } from '../data/stone-added.js'
import type { StoneTriplet } from './datasets.js'
import type { EvaluationModel, SlicePrediction } from './model-runner.js'
import type { StoneAddedTwin, VascularMimic } from './stone-added-metrics.js'

/** A held-out stone-free slice, already scored. */
interface Base {
  path: string
  group: string
  finding: string
  prediction: SlicePrediction
}

/** A held-out yildirim slice with its scored counterfactuals (their model inputs give the patches). */
interface ScoredTriplet {
  triplet: StoneTriplet
  original: SlicePrediction
  stoneRemoved: SlicePrediction
  decoy: SlicePrediction | undefined
}

export interface EvaluatedTwin {
  base: Base
  stoneAdded: SlicePrediction
  decoy: SlicePrediction
  /** Where the patch went, in model-input pixels. */
  box: Box
  scores: StoneAddedTwin
}

/** The stone / decoy patch pairs of the held-out yildirim groups. */
export function heldOutPatches (model: EvaluationModel, triplets: readonly ScoredTriplet[]): PatchPair[] {
  return triplets.flatMap((t) => t.decoy === undefined
    ? []
    : patchPairs({
      original: t.original.modelInput,
      stoneRemoved: t.stoneRemoved.modelInput,
      decoy: t.decoy.modelInput,
      originalSize: { width: t.triplet.original.width, height: t.triplet.original.height },
      removedRegions: t.triplet.removedRegions,
      decoyRegions: t.triplet.decoyRegions
    }, model.spec.input))
}

/**
 * The stone-added twins of held-out slices, built exactly as the training export builds them for train slices
 * (model/data/stone-added.ts), with patches of the held-out yildirim groups only. Seeded per slice.
 */
export async function stoneAddedTwins (model: EvaluationModel, bases: readonly Base[], library: readonly PatchPair[]): Promise<EvaluatedTwin[]> {
  const { input } = model.spec
  const made = bases.flatMap((base, k) => {
    const random = seededRandom(k + 1)
    const twins = addStoneTwins({ pixels: base.prediction.modelInput, width: input.width, height: input.height },
      library[Math.floor(random() * library.length)], random)
    return twins === undefined ? [] : [{ base, ...twins }]
  })
  const predictions = await model.predictModelInputs(made.flatMap((twin) => [Buffer.from(twin.stoneAdded), Buffer.from(twin.decoy)]))
  return made.map((twin, i) => {
    const stoneAdded = predictions[2 * i]
    const decoy = predictions[2 * i + 1]
    return {
      base: twin.base,
      stoneAdded,
      decoy,
      box: twin.box,
      scores: {
        group: twin.base.group,
        finding: twin.base.finding,
        untouched: twin.base.prediction.probability,
        stoneAdded: stoneAdded.probability,
        decoy: decoy.probability
      }
    }
  })
}

/** Vascular-calcification mimics of held-out slices (model/data/stone-added.ts; not trained on), seeded per slice. */
export async function vascularMimics (model: EvaluationModel, bases: readonly Base[], library: readonly PatchPair[]): Promise<VascularMimic[]> {
  const { input } = model.spec
  const made = bases.flatMap((base, k) => {
    const random = seededRandom(MIMIC_SEED + k)
    const mimic = addVascularMimic({ pixels: base.prediction.modelInput, width: input.width, height: input.height },
      library[Math.floor(random() * library.length)].stone, random)
    return mimic === undefined ? [] : [{ base, image: mimic.image }]
  })
  const predictions = await model.predictModelInputs(made.map((mimic) => Buffer.from(mimic.image)))
  return made.map(({ base }, i) => ({
    group: base.group,
    finding: base.finding,
    untouched: base.prediction.probability,
    mimic: predictions[i].probability
  }))
}
