import type { Estimate } from './bootstrap.js'
import type { ClassificationFigures } from './ct-kidney-metrics.js'
import type { ModelMetrics } from './evaluate-model.js'
import { FIGURE_FILES } from './figures.js'
import type { ConfusionMatrix } from './metrics.js'

/**
 * Fills `{{section}}` placeholders of MODEL_CARD.template.md with tables generated from metrics.json, so
 * every number in the card comes from the evaluation run and the prose stays hand-written in the template.
 */

export function percent (value: number): string {
  return Number.isFinite(value) ? `${(100 * value).toFixed(1)} %` : 'n/a'
}

export function decimal (value: number): string {
  return Number.isFinite(value) ? value.toFixed(3) : 'n/a'
}

export function withInterval (estimate: Estimate, format: (value: number) => string): string {
  if (!Number.isFinite(estimate.lower)) return format(estimate.value)
  return `${format(estimate.value)} [${format(estimate.lower)}, ${format(estimate.upper)}]`
}

function table (header: string[], rows: string[][]): string {
  return [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}

function confusion (matrix: ConfusionMatrix): string {
  return `TP ${matrix.truePositive} · FN ${matrix.falseNegative} · TN ${matrix.trueNegative} · FP ${matrix.falsePositive}`
}

function classificationRow (name: string, figures: ClassificationFigures): string[] {
  return [
    name,
    String(figures.count),
    withInterval(figures.sensitivity, percent),
    withInterval(figures.specificity, percent),
    withInterval(figures.rocAuc, decimal),
    withInterval(figures.expectedCalibrationError, decimal),
    confusion(figures.confusion)
  ]
}

const sections: Record<string, (metrics: ModelMetrics) => string> = {
  model: ({ model, bootstrap, runtimeSeconds }) => table(['', ''], [
    ['model', `${model.name} ${model.version} (\`${model.file}\`)`],
    ['ONNX sha256', `\`${model.sha256}\``],
    ['decision threshold on P(Stone) (from the sidecar, chosen on validation data)', String(model.threshold)],
    ['temperature (from the sidecar)', String(model.temperature)],
    ['bootstrap', `${bootstrap.iterations} resamples of ${bootstrap.unit}, seed ${bootstrap.seed}`],
    ['evaluation runtime', `${runtimeSeconds} s`]
  ]),

  verdict: ({ headline }) => {
    const missed = headline.filter((figure) => !figure.met)
    if (missed.length === 0) return 'Every target of the issue is met on held-out data.'
    const list = missed.map((figure) =>
      `- ${figure.label}: ${withInterval(figure, figure.format === 'decimal' ? decimal : percent)}, target ${figure.target}`)
    return `**${missed.length} of ${headline.length} targets are missed** on held-out data:\n\n${list.join('\n')}`
  },

  validation: ({ model }) => Object.keys(model.validation).length === 0
    ? 'The sidecar records no validation figures.'
    : table(['validation figure recorded by training (sidecar `metrics`, val data only)', 'value'],
      Object.entries(model.validation).map(([name, value]) => [`\`${name}\``, decimal(value)])),

  targets: ({ headline }) => table(['figure', 'target', 'measured [95 % CI]', 'met'],
    headline.map((figure) => [
      figure.label, figure.target,
      withInterval(figure, figure.format === 'decimal' ? decimal : percent),
      figure.met ? 'yes' : '**no**'
    ])),

  ctKidney: ({ ctKidneyTest }) => table(
    ['ct-kidney test', 'n', 'sensitivity', 'specificity', 'ROC AUC', 'ECE', 'confusion at threshold'],
    [
      classificationRow('per image', ctKidneyTest.perImage),
      classificationRow('per series (mean P(Stone))', ctKidneyTest.perSeries),
      classificationRow('axial slices', ctKidneyTest.perPlane.axial),
      classificationRow('coronal slices', ctKidneyTest.perPlane.coronal)
    ]),

  stoneEvidence: ({ stoneEvidence: s, model }) => table(['stone evidence, held-out yildirim groups', 'value [95 % CI]'], [
    ['slices (groups)', `${s.slices} (${s.groups})`],
    [`sensitivity on original slices (${s.originalsCalledStone} of ${s.slices} called Stone)`, withInterval(s.sensitivityOriginal, percent)],
    [`specificity on the same slices with stones removed (${s.stoneRemovedCalledStone} still called Stone)`,
      withInterval(s.specificityStoneRemoved, percent)],
    ['pairs AUC: originals vs stone-removed twins', withInterval(s.pairsAuc, decimal)],
    ['specificity on stone-removed twins at 90 % sensitivity, read off this ROC (descriptive: a cut chosen on test is not a usable threshold)',
      withInterval(s.specificityAt90Sensitivity, percent)],
    ['twin-by-twin: share of slices scoring higher with stones than without', withInterval(s.pairedWinRate, percent)],
    [`sensitivity on decoy-in-painted slices (${s.decoysCalledStone} of ${s.slicesWithDecoy} called Stone)`,
      withInterval(s.decoySensitivity, percent)],
    ['decoy minus original sensitivity, same slices (target: within ±2 points)',
      withInterval(s.decoyMinusOriginalSensitivity, (v) => `${(100 * v).toFixed(1)} points`)],
    ['threshold used', String(model.threshold)]
  ]),

  stoneFree: ({ stoneFreeTest }) => table(
    ['ct-kidney-other test (no stone)', 'images', 'specificity per image [95 % CI]', 'series called Normal (mean P(Stone) below the threshold)', 'per series: mean P(Stone), share of slices called Normal'],
    (['cyst', 'tumor'] as const).map((finding) => {
      const figures = stoneFreeTest[finding]
      return [
        finding === 'cyst' ? 'cyst' : 'tumour', String(figures.images), withInterval(figures.specificity, percent),
        `${figures.seriesCalledNormal} of ${figures.series.length}`,
        figures.series.map((s) => `${s.group} (${s.slices}): ${s.meanProbability.toFixed(3)}, ${percent(s.specificity)}`).join('<br>')
      ]
    })),

  nonContrast: ({ nonContrast: n }) => table(['non-contrast pair: ct-kidney axial Stone test vs cyst test', 'ROC AUC [95 % CI]'], [
    [`model (${n.stoneSlices} Stone, ${n.cystSlices} cyst slices)`, withInterval(n.rocAuc, decimal)],
    ['8x8 thumbnail probe fitted on this pair (stone-blind)', withInterval(n.probeRocAuc, decimal)],
    ['mean grey level of the model input alone', withInterval(n.meanGreyRocAuc, decimal)]
  ]) + `\n\nThe non-contrast probe is fitted on the ${n.probe.trainImages} train slices of the same pair (ct-kidney axial ` +
    `Stone train vs cyst train), its ridge strength (${n.probe.l2}) chosen on the val pair (AUC ${decimal(n.probe.valAuc)}).`,

  stoneAdded: ({ stoneAdded: a, vascularMimics: v, model }) => table(['stone-added twins on held-out stone-free axial slices', 'value [95 % CI]'], [
    ['twin pairs (series)', `${a.pairs} (${a.series})`],
    ['pairs AUC: stone-added vs decoy twin', withInterval(a.pairsAuc, decimal)],
    ['share of slices scoring higher with the stone than untouched', withInterval(a.winRateOverUntouched, percent)],
    [`sensitivity on stone-added slices at the threshold ${model.threshold}`, withInterval(a.sensitivity, percent)],
    ['specificity on their decoy twins', withInterval(a.decoySpecificity, percent)],
    ['synthetic vascular mimics: a held-out stone patch blended in front of the vertebral body, Normal (series)', `${v.images} (${v.series})`],
    [`specificity on the vascular mimics at the threshold ${model.threshold}`, withInterval(v.specificity, percent)],
    ['share of slices scoring higher with the mimic than untouched', withInterval(v.riseOverUntouched, percent)]
  ]),

  pointing: ({ pointingGame: g }) => table(['pointing game, held-out yildirim slices called Stone', 'value [95 % CI]'], [
    ['slices called Stone (groups)', `${g.slicesCalledStone} (${g.groups})`],
    [`top finding touches a true stone box (${g.topHits} slices)`, withInterval(g.topHit, percent)],
    [`any of the up to 3 findings touches one (${g.anyHits} slices)`, withInterval(g.anyHit, percent)],
    [`control: the top box mirrored left-right touches one (${g.mirroredTopHits} slices)`, withInterval(g.mirroredTopHit, percent)],
    ['median area of the top box, share of the image', percent(g.medianTopBoxShare)]
  ]),

  probe: ({ thumbnailProbe: probe, ctKidneyTest, stoneEvidence, nonContrast }) => table(['ROC AUC [95 % CI]', 'model', '8x8 thumbnail probe'], [
    ['ct-kidney test, per image', withInterval(ctKidneyTest.perImage.rocAuc, decimal), withInterval(probe.ctKidneyTestAuc, decimal)],
    ['non-contrast pair, ct-kidney axial Stone vs cyst (probe fitted on this pair)', withInterval(nonContrast.rocAuc, decimal), withInterval(nonContrast.probeRocAuc, decimal)],
    ['yildirim held-out, original vs stones removed', withInterval(stoneEvidence.pairsAuc, decimal), withInterval(probe.yildirimPairsAuc, decimal)]
  ]) + `\n\nThe probe is an L2-regularised logistic regression on the 64 grey values of an 8x8 thumbnail of the model's ` +
    `own 224x224 input, fitted on the ${probe.trainImages} ct-kidney train slices (the non-contrast one on its own pair, above); its ` +
    `ridge strength (${probe.l2}) was chosen on ct-kidney val (AUC ${decimal(probe.valAuc)}), never on test.`,

  errors: ({ errors }) => table(['error', 'count', 'most confident examples: slice (series or group) P(Stone)'],
    errors.map((error) => [
      error.kind,
      `${error.count} of ${error.of}`,
      error.worst.map((example) => `\`${example.image}\` (${example.group}) ${example.probability.toFixed(3)}`).join('<br>') || 'none'
    ])),

  figures: () => [
    `![ROC curves: model and 8x8 probe on ct-kidney test and on the yildirim pairs](figures/${FIGURE_FILES.roc})`,
    `![Reliability diagram on ct-kidney test](figures/${FIGURE_FILES.reliability})`
  ].join('\n\n'),

  activationMaps: () => [
    `![Class activation maps on ct-kidney test](figures/${FIGURE_FILES.ctKidneyMaps})`,
    `![Class activation maps of the worst cyst and tumour false alarms, and of stone-added twins](figures/${FIGURE_FILES.stoneFreeMaps})`,
    `![Class activation maps on held-out yildirim slices, stone-removed twins and decoys](figures/${FIGURE_FILES.stoneEvidenceMaps})`
  ].join('\n\n'),

  pointingFigure: () => `![Pointing game: findings (cyan, thick = top) and true stone boxes (green) on held-out yildirim slices](figures/${FIGURE_FILES.pointingGame})`
}

export function renderModelCard (template: string, metrics: ModelMetrics): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
    const section = sections[name]
    if (section === undefined) throw new Error(`MODEL_CARD.template.md: unknown section {{${name}}}`)
    return section(metrics)
  })
}
