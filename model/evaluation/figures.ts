import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import type { ModelSpec } from '../../inference/model-spec.js'
import { activationGrid, type ActivationCase, type ActivationRow, type CaseBoxes } from './activation-maps.js'
import { COLOURS, reliabilityChart, rocChart, writeSvgAsPng, type RocSeries } from './charts.js'
import { mostExtremeAcrossGroups } from './error-examples.js'
import { pointedSlice, type EvaluatedSlice, type EvaluatedTriplet, type EvaluationRun } from './evaluate-model.js'
import { rocCurve, type Scored } from './metrics.js'
import { topHit } from './pointing-game.js'
import type { EvaluatedTwin } from './stone-added-twins.js'

export const FIGURE_FILES = {
  roc: 'roc.png',
  reliability: 'reliability.png',
  ctKidneyMaps: 'cam-ct-kidney.png',
  stoneFreeMaps: 'cam-cyst-tumour.png',
  stoneEvidenceMaps: 'cam-stone-evidence.png',
  pointingGame: 'pointing-game.png'
} as const

const CASES_PER_ROW = 3

function roc (items: Scored[], name: string, colour: string, threshold?: number): RocSeries {
  const positives = items.filter((item) => item.label === 1)
  const negatives = items.filter((item) => item.label === 0)
  return {
    name,
    colour,
    points: rocCurve(items),
    operatingPoint: threshold === undefined
      ? undefined
      : {
          falsePositiveRate: negatives.filter((item) => item.probability >= threshold).length / negatives.length,
          truePositiveRate: positives.filter((item) => item.probability >= threshold).length / positives.length
        }
  }
}

function sliceCase (slice: EvaluatedSlice): ActivationCase {
  return {
    caption: [`P(Stone) ${slice.probability.toFixed(3)} · ${slice.plane}`, `${slice.path.split('/').pop() ?? ''} (${slice.group})`],
    modelInput: slice.prediction.modelInput,
    stoneMap: slice.prediction.stoneMap
  }
}

function ctKidneyRows (slices: EvaluatedSlice[], threshold: number): ActivationRow[] {
  const called = (slice: EvaluatedSlice): boolean => slice.probability >= threshold
  const row = (title: string, filter: (s: EvaluatedSlice) => boolean, highestFirst: boolean): ActivationRow => ({
    title,
    cases: mostExtremeAcrossGroups(slices.filter(filter), (s) => s.group, (s) => s.probability, highestFirst, CASES_PER_ROW).map(sliceCase)
  })
  return [
    row('ct-kidney test · Stone slice, called Stone (most confident)', (s) => s.label === 1 && called(s), true),
    row('ct-kidney test · Stone slice, missed (lowest P(Stone))', (s) => s.label === 1 && !called(s), false),
    row('ct-kidney test · Normal slice, called Normal (most confident)', (s) => s.label === 0 && !called(s), false),
    row('ct-kidney test · Normal slice, false alarm (highest P(Stone))', (s) => s.label === 0 && called(s), true)
  ]
}

/** The worst cyst and tumour false alarms (the card must show them), the calmest cysts, stone-added twins. */
function stoneFreeRows (slices: EvaluatedSlice[], twins: EvaluatedTwin[], threshold: number): ActivationRow[] {
  const row = (title: string, filter: (s: EvaluatedSlice) => boolean, highestFirst: boolean, count = CASES_PER_ROW): ActivationRow => ({
    title,
    cases: mostExtremeAcrossGroups(slices.filter(filter), (s) => s.group, (s) => s.probability, highestFirst, count).map(sliceCase)
  })
  const twinCase = (twin: EvaluatedTwin, version: 'stoneAdded' | 'decoy'): ActivationCase => ({
    caption: [`P(Stone) ${twin[version].probability.toFixed(3)} · ${version === 'stoneAdded' ? 'stone added' : 'decoy twin'}`,
      `${twin.base.path.split('/').pop() ?? ''} (${twin.base.group})`],
    modelInput: twin[version].modelInput,
    stoneMap: twin[version].stoneMap,
    boxes: { originalSize: { width: 224, height: 224 }, stones: version === 'stoneAdded' ? [twin.box] : [], inpainted: version === 'decoy' ? [twin.box] : [] }
  })
  const cystTwins = mostExtremeAcrossGroups(twins.filter((t) => t.base.finding === 'cyst'), (t) => t.base.group, (t) => t.scores.stoneAdded, false, 2)
  return [
    row('cyst test · false alarm (highest P(Stone))', (s) => s.finding === 'cyst' && s.probability >= threshold, true, 5),
    row('tumour test · false alarm (highest P(Stone))', (s) => s.finding === 'tumor' && s.probability >= threshold, true),
    row('cyst test · called Normal, highest P(Stone) below the threshold', (s) => s.finding === 'cyst' && s.probability < threshold, true),
    {
      title: 'cyst test · stone-added twin (green: blended stone) and its decoy twin (magenta), least confident pairs',
      cases: cystTwins.flatMap((twin) => [twinCase(twin, 'stoneAdded'), twinCase(twin, 'decoy')])
    }
  ]
}

/** yildirim held-out slices called Stone with their findings (cyan, thick: the top one) and stone boxes (green). */
function pointingRows (triplets: EvaluatedTriplet[], threshold: number): ActivationRow[] {
  const called = triplets.filter((t) => t.scores.original >= threshold)
  const row = (title: string, filter: (t: EvaluatedTriplet) => boolean, highestFirst: boolean): ActivationRow => ({
    title,
    cases: mostExtremeAcrossGroups(called.filter(filter), (t) => t.triplet.group, (t) => t.scores.original, highestFirst, 4)
      .map((t) => ({ ...tripletCase(t, 'original'), boxes: { ...tripletCase(t, 'original').boxes as CaseBoxes, findings: t.findings.map((f) => f.box) } }))
  })
  return [
    row('pointing game · top finding on a stone (most confident)', (t) => topHit(pointedSlice(t)), true),
    row('pointing game · top finding on a stone (least confident)', (t) => topHit(pointedSlice(t)), false),
    row('pointing game · top finding off the stones', (t) => !topHit(pointedSlice(t)), true)
  ]
}

type Version = 'original' | 'stoneRemoved' | 'decoy'

function tripletCase (item: EvaluatedTriplet, version: Version): ActivationCase {
  const prediction = item[version]
  if (prediction === undefined) throw new Error(`no ${version} prediction for ${item.triplet.image}`)
  const { triplet } = item
  return {
    // File names are <ticks>-<id>.jpg; the id and the group are enough to find the slice again.
    caption: [`P(Stone) ${prediction.probability.toFixed(3)} · ${version}`, `${path.basename(triplet.image).split('-').pop()} (${triplet.group})`],
    modelInput: prediction.modelInput,
    stoneMap: prediction.stoneMap,
    boxes: {
      originalSize: { width: triplet.original.width, height: triplet.original.height },
      stones: triplet.stones,
      inpainted: version === 'original' ? [] : version === 'stoneRemoved' ? triplet.removedRegions : triplet.decoyRegions
    }
  }
}

function stoneEvidenceRows (triplets: EvaluatedTriplet[], threshold: number): ActivationRow[] {
  const row = (title: string, version: Version, wantStone: boolean): ActivationRow => {
    const probability = (t: EvaluatedTriplet): number => t[version]?.probability ?? NaN
    const matching = triplets.filter((t) => t[version] !== undefined && (probability(t) >= threshold) === wantStone)
    return {
      title,
      cases: mostExtremeAcrossGroups(matching, (t) => t.triplet.group, probability, wantStone, CASES_PER_ROW)
        .map((t) => tripletCase(t, version))
    }
  }
  return [
    row('yildirim held-out · original slice, called Stone (green: stone boxes)', 'original', true),
    row('yildirim held-out · original slice, missed', 'original', false),
    row('stones removed (magenta: in-painted), called Normal: correct', 'stoneRemoved', false),
    row('stones removed, still called Stone: wrong', 'stoneRemoved', true),
    row('decoy in-painted away from the stones, still Stone: correct', 'decoy', true),
    row('decoy in-painted, turned Normal: wrong', 'decoy', false)
  ]
}

/** Writes every PNG the model card shows into `directory`. */
export async function writeFigures (run: EvaluationRun, spec: ModelSpec, directory: string): Promise<void> {
  await mkdir(directory, { recursive: true })
  const { metrics, ctKidneySlices, stoneFreeSlices, nonContrastSlices: nonContrast, triplets, twins } = run
  const threshold = metrics.model.threshold
  const auc = (value: number): string => `AUC ${value.toFixed(3)}`
  const pairs = (original: (t: EvaluatedTriplet) => number, removed: (t: EvaluatedTriplet) => number): Scored[] =>
    triplets.flatMap((t) => [{ probability: original(t), label: 1 as const }, { probability: removed(t), label: 0 as const }])

  await writeSvgAsPng(rocChart([
    {
      title: 'ct-kidney test (per image)',
      series: [
        roc(ctKidneySlices, `model, ${auc(metrics.ctKidneyTest.perImage.rocAuc.value)}`, COLOURS.model, threshold),
        roc(ctKidneySlices.map((s) => ({ label: s.label, probability: s.probeProbability })),
          `8x8 probe, ${auc(metrics.thumbnailProbe.ctKidneyTestAuc.value)}`, COLOURS.probe)
      ]
    },
    {
      title: 'non-contrast: ct-kidney axial Stone vs cyst',
      series: [
        roc(nonContrast, `model, ${auc(metrics.nonContrast.rocAuc.value)}`, COLOURS.model, threshold),
        roc(nonContrast.map((s) => ({ label: s.label, probability: s.probeProbability })),
          `8x8 probe, ${auc(metrics.nonContrast.probeRocAuc.value)}`, COLOURS.probe),
        roc(nonContrast.map((s) => ({ label: s.label, probability: s.meanGrey })),
          `mean grey, ${auc(metrics.nonContrast.meanGreyRocAuc.value)}`, COLOURS.diagonal)
      ]
    },
    {
      title: 'yildirim held-out: with vs without stones',
      series: [
        roc(pairs((t) => t.scores.original, (t) => t.scores.stoneRemoved),
          `model, ${auc(metrics.stoneEvidence.pairsAuc.value)}`, COLOURS.model, threshold),
        roc(pairs((t) => t.scores.probeOriginal, (t) => t.scores.probeStoneRemoved),
          `8x8 probe, ${auc(metrics.thumbnailProbe.yildirimPairsAuc.value)}`, COLOURS.probe)
      ]
    }
  ]), path.join(directory, FIGURE_FILES.roc))

  const ece = metrics.ctKidneyTest.perImage.expectedCalibrationError.value
  await writeSvgAsPng(reliabilityChart(`ct-kidney test reliability, ECE ${ece.toFixed(3)}`, metrics.ctKidneyTest.perImage.reliability),
    path.join(directory, FIGURE_FILES.reliability))

  await activationGrid(ctKidneyRows(ctKidneySlices, threshold), spec, path.join(directory, FIGURE_FILES.ctKidneyMaps))
  await activationGrid(stoneFreeRows(stoneFreeSlices, twins, threshold), spec, path.join(directory, FIGURE_FILES.stoneFreeMaps))
  await activationGrid(stoneEvidenceRows(triplets, threshold), spec, path.join(directory, FIGURE_FILES.stoneEvidenceMaps))
  await activationGrid(pointingRows(triplets, threshold), spec, path.join(directory, FIGURE_FILES.pointingGame))
}
