import type { ModelSpec } from '../../inference/model-spec.js'
import type { SliceEntry } from '../data/slices.js'
import { predictProbability, selectProbe, thumbnailFeatures, type LogisticRegression } from './thumbnail-probe.js'

/**
 * The two stone-blind baselines, fitted on train slices with the ridge strength chosen on val (never test):
 * ct-kidney Normal vs Stone (the acquisition confound of ct-kidney) and the non-contrast pair, ct-kidney axial
 * Stone vs cyst (the export look).
 */
export interface FittedProbe {
  model: LogisticRegression
  trainImages: number
  l2: number
  valAuc: number
}

export interface Probes {
  ctKidney: FittedProbe
  nonContrast: FittedProbe
  /** P(Stone) of a probe on a model input. */
  score: (probe: FittedProbe, modelInput: Buffer) => number
}

export function isNonContrastPair (entry: SliceEntry): boolean {
  return (entry.dataset === 'ct-kidney' && entry.label === 1 && entry.plane === 'axial') ||
    (entry.dataset === 'ct-kidney-other' && entry.finding === 'cyst')
}

export async function fitProbes (
  slices: readonly SliceEntry[], spec: ModelSpec, thumbnailsOf: (entries: readonly SliceEntry[]) => Promise<Float64Array[]>
): Promise<Probes> {
  const fit = async (members: (entry: SliceEntry) => boolean): Promise<FittedProbe> => {
    const train = slices.filter((entry) => entry.split === 'train' && members(entry))
    const val = slices.filter((entry) => entry.split === 'val' && members(entry))
    const selection = selectProbe(
      { features: await thumbnailsOf(train), labels: train.map((entry) => entry.label) },
      { features: await thumbnailsOf(val), labels: val.map((entry) => entry.label) })
    return { ...selection, trainImages: train.length }
  }
  return {
    ctKidney: await fit((entry) => entry.dataset === 'ct-kidney'),
    nonContrast: await fit(isNonContrastPair),
    score: (probe, modelInput) => predictProbability(probe.model, thumbnailFeatures(modelInput, spec))
  }
}

export function meanGrey (modelInput: Buffer): number {
  let sum = 0
  for (const value of modelInput) sum += value
  return sum / modelInput.length / 255
}
