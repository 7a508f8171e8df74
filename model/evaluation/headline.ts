import type { CtKidneyMetrics } from './ct-kidney-metrics.js'
import type { NonContrastMetrics } from './noncontrast-metrics.js'
import type { PointingGameMetrics } from './pointing-game.js'
import type { StoneEvidenceMetrics } from './stone-evidence-metrics.js'
import type { StoneFreeMetrics } from './stone-free-series-metrics.js'

/**
 * The figures the issue sets targets for. The model card's target table and the regression test both read
 * this list from metrics.json, so what is promised, what is shown and what CI guards is one list.
 */
export interface HeadlineFigure {
  id: string
  label: string
  value: number
  lower: number
  upper: number
  /** Whether a larger value is better; the regression test fails when a figure moves the other way by > 0.01. */
  higherIsBetter: boolean
  /** Rates read best as percentages, AUC and calibration error as decimals. */
  format: 'percent' | 'decimal'
  target: string
  met: boolean
}

export interface HeadlineInputs {
  ctKidney: CtKidneyMetrics
  stoneFree: StoneFreeMetrics
  nonContrast: NonContrastMetrics
  stones: StoneEvidenceMetrics
  pointing: PointingGameMetrics
}

export function headlineFigures ({ ctKidney, stoneFree, nonContrast, stones, pointing }: HeadlineInputs): HeadlineFigure[] {
  const image = ctKidney.perImage
  const figure = (
    id: string, label: string, estimate: { value: number, lower: number, upper: number },
    higherIsBetter: boolean, target: string, met: boolean
  ): HeadlineFigure => ({
    id, label, ...estimate, higherIsBetter, format: /AUC|calibration/.test(label) ? 'decimal' : 'percent', target, met
  })
  return [
    figure('stoneFree.cystSpecificity', 'ct-kidney-other test: specificity on cyst slices (per image)', stoneFree.cyst.specificity,
      true, '>= 95 %', stoneFree.cyst.specificity.value >= 0.95),
    figure('stoneFree.tumorSpecificity', 'ct-kidney-other test: specificity on tumour slices (per image)', stoneFree.tumor.specificity,
      true, '>= 95 %', stoneFree.tumor.specificity.value >= 0.95),
    figure('nonContrast.rocAuc', 'non-contrast ROC AUC: ct-kidney axial Stone test vs cyst test', nonContrast.rocAuc, true,
      '>= 0.98', nonContrast.rocAuc.value >= 0.98),
    figure('ctKidney.sensitivity', 'ct-kidney test: stone sensitivity (per image)', image.sensitivity, true, '>= 97 %',
      image.sensitivity.value >= 0.97),
    figure('ctKidney.specificity', 'ct-kidney test: specificity (per image)', image.specificity, true, '>= 97 %',
      image.specificity.value >= 0.97),
    figure('ctKidney.rocAuc', 'ct-kidney test: ROC AUC (per image)', image.rocAuc, true, '>= 0.99',
      image.rocAuc.value >= 0.99),
    figure('ctKidney.ece', 'ct-kidney test: expected calibration error', image.expectedCalibrationError, false, '<= 0.03',
      image.expectedCalibrationError.value <= 0.03),
    figure('stones.sensitivity', 'yildirim held-out: sensitivity on original slices', stones.sensitivityOriginal, true,
      '>= 90 %', stones.sensitivityOriginal.value >= 0.9),
    figure('stones.removedSpecificity', 'yildirim held-out: specificity on stone-removed twins',
      stones.specificityStoneRemoved, true, '>= 90 %', stones.specificityStoneRemoved.value >= 0.9),
    figure('stones.pairsAuc', 'yildirim held-out: pairs AUC (original vs stone-removed)', stones.pairsAuc, true,
      '>= 0.95', stones.pairsAuc.value >= 0.95),
    figure('stones.decoySensitivity', 'yildirim held-out: sensitivity on decoy-in-painted slices',
      stones.decoySensitivity, true, 'within 2 points of the originals',
      Math.abs(stones.decoyMinusOriginalSensitivity.value) <= 0.02),
    figure('pointing.topHit', 'pointing game: top finding on a true stone (yildirim held-out slices called Stone)',
      pointing.topHit, true, '>= 85 %', pointing.topHit.value >= 0.85)
  ]
}
