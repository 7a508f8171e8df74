import t from 'tap'
import { seededRandom } from '../model/data/random.js'
import { bootstrapByGroup } from '../model/evaluation/bootstrap.js'
import {
  confusionMatrix, expectedCalibrationError, rocAuc, rocCurve, sensitivity, specificity, type Scored
} from '../model/evaluation/metrics.js'
import { fitLogisticRegression, predictProbability } from '../model/evaluation/thumbnail-probe.js'

const scored = (pairs: Array<[number, 0 | 1]>): Scored[] => pairs.map(([probability, label]) => ({ probability, label }))

t.test('ROC AUC is the Mann-Whitney probability, ties counting half', async (t) => {
  // scikit-learn's documented example: roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
  t.equal(rocAuc(scored([[0.1, 0], [0.4, 0], [0.35, 1], [0.8, 1]])), 0.75)
  t.equal(rocAuc(scored([[0.5, 0], [0.5, 1], [0.5, 0], [0.5, 1]])), 0.5)
  t.equal(rocAuc(scored([[0.9, 1], [0.2, 0], [0.7, 1]])), 1)
  t.ok(Number.isNaN(rocAuc(scored([[0.9, 1], [0.7, 1]]))), 'undefined without negatives')
  const curve = rocCurve(scored([[0.1, 0], [0.4, 0], [0.35, 1], [0.8, 1]]))
  t.same(curve.at(-1), { falsePositiveRate: 1, truePositiveRate: 1, threshold: 0.1 })
  t.same(curve[1], { falsePositiveRate: 0, truePositiveRate: 0.5, threshold: 0.8 })
})

t.test('confusion matrix, sensitivity and specificity at the threshold (inclusive)', async (t) => {
  const matrix = confusionMatrix(scored([[0.5, 1], [0.49, 1], [0.2, 0], [0.6, 0], [0.1, 0]]), 0.5)
  t.same(matrix, { truePositive: 1, falseNegative: 1, trueNegative: 2, falsePositive: 1 })
  t.equal(sensitivity(matrix), 0.5)
  t.equal(specificity(matrix), 2 / 3)
})

t.test('expected calibration error weighs each bin gap by its share of slices', async (t) => {
  // bin [0.2, 0.3): mean 0.25, Stone fraction 0.25 -> 0; bin [0.9, 1]: mean 0.95, fraction 0.5 -> 0.45
  const items = scored([[0.25, 1], [0.25, 0], [0.25, 0], [0.25, 0], [0.95, 1], [0.95, 0]])
  t.ok(Math.abs(expectedCalibrationError(items) - (2 / 6) * 0.45) < 1e-12)
})

t.test('group bootstrap is seeded and resamples whole groups within their stratum', async (t) => {
  const items = Array.from({ length: 40 }, (_, i) => ({ group: `g${i % 8}`, label: (i % 8 < 3 ? 1 : 0) as 0 | 1, value: i % 8 }))
  const statistics = (sample: readonly typeof items[number][]): { positives: number, groupSizes: number } => ({
    positives: sample.filter((item) => item.label === 1).length,
    // Every group has 5 members; a slice-level resample would break this multiple.
    groupSizes: sample.length % 5
  })
  const options = { iterations: 200, seed: 7 }
  const first = bootstrapByGroup(items, (item) => item.group, (item) => String(item.label), statistics, options)
  const again = bootstrapByGroup(items, (item) => item.group, (item) => String(item.label), statistics, options)
  t.same(first, again, 'same seed, same intervals')
  t.same(first.positives, { value: 15, lower: 15, upper: 15 }, 'strata keep their number of groups')
  t.same(first.groupSizes, { value: 0, lower: 0, upper: 0 })
  const other = seededRandom(8)()
  t.not(other, seededRandom(7)(), 'different seeds differ')
})

t.test('the logistic-regression probe learns a separable cue', async (t) => {
  const random = seededRandom(3)
  const features = Array.from({ length: 200 }, (_, i) => Float64Array.from({ length: 4 }, (_, j) => random() + (j === 2 && i % 2 === 1 ? 0.8 : 0)))
  const labels = features.map((_, i) => (i % 2) as 0 | 1)
  const model = fitLogisticRegression(features, labels)
  const auc = rocAuc(features.map((row, i) => ({ probability: predictProbability(model, row), label: labels[i] })))
  t.ok(auc > 0.95, `train AUC ${auc}`)
  t.ok(Math.abs(model.weights[2]) > 3 * Math.max(Math.abs(model.weights[0]), Math.abs(model.weights[1])), 'weight on the cue dominates')
})
