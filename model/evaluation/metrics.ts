/**
 * Binary classification metrics on P(Stone). Labels are 1 = Stone (positive), 0 = Normal, as in the
 * service contract. Every function returns NaN instead of throwing when a class is missing, so that a
 * bootstrap resample without positives is counted as undefined rather than crashing the run.
 */

export interface Scored {
  /** P(Stone) after temperature softmax. */
  probability: number
  label: 0 | 1
}

export interface ConfusionMatrix {
  truePositive: number
  falseNegative: number
  trueNegative: number
  falsePositive: number
}

/** Mean P(Stone) of a set of slices: the per-series score (a series is called Stone when it reaches the threshold). */
export function meanProbability (items: ReadonlyArray<{ probability: number }>): number {
  return items.reduce((sum, item) => sum + item.probability, 0) / items.length
}

export function confusionMatrix (items: readonly Scored[], threshold: number): ConfusionMatrix {
  const matrix = { truePositive: 0, falseNegative: 0, trueNegative: 0, falsePositive: 0 }
  for (const { probability, label } of items) {
    const predicted = probability >= threshold
    if (label === 1) predicted ? matrix.truePositive++ : matrix.falseNegative++
    else predicted ? matrix.falsePositive++ : matrix.trueNegative++
  }
  return matrix
}

export function sensitivity (matrix: ConfusionMatrix): number {
  return matrix.truePositive / (matrix.truePositive + matrix.falseNegative)
}

export function specificity (matrix: ConfusionMatrix): number {
  return matrix.trueNegative / (matrix.trueNegative + matrix.falsePositive)
}

/** Mann-Whitney estimate: probability that a random positive outranks a random negative, ties counting half. */
export function rocAuc (items: readonly Scored[]): number {
  const sorted = [...items].sort((a, b) => a.probability - b.probability)
  let positives = 0
  let rankSumOfPositives = 0
  for (let start = 0; start < sorted.length;) {
    let end = start
    while (end < sorted.length && sorted[end].probability === sorted[start].probability) end++
    const meanRank = (start + 1 + end) / 2
    for (let i = start; i < end; i++) {
      if (sorted[i].label === 1) {
        positives++
        rankSumOfPositives += meanRank
      }
    }
    start = end
  }
  const negatives = sorted.length - positives
  if (positives === 0 || negatives === 0) return NaN
  return (rankSumOfPositives - positives * (positives + 1) / 2) / (positives * negatives)
}

export interface RocPoint {
  falsePositiveRate: number
  truePositiveRate: number
  threshold: number
}

/** One point per distinct score, from (0,0) to (1,1). */
export function rocCurve (items: readonly Scored[]): RocPoint[] {
  const sorted = [...items].sort((a, b) => b.probability - a.probability)
  const positives = sorted.filter((item) => item.label === 1).length
  const negatives = sorted.length - positives
  const points: RocPoint[] = [{ falsePositiveRate: 0, truePositiveRate: 0, threshold: Infinity }]
  let truePositives = 0
  let falsePositives = 0
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i].label === 1) truePositives++
    else falsePositives++
    if (i + 1 === sorted.length || sorted[i + 1].probability !== sorted[i].probability) {
      points.push({
        falsePositiveRate: falsePositives / negatives,
        truePositiveRate: truePositives / positives,
        threshold: sorted[i].probability
      })
    }
  }
  return points
}

export interface ReliabilityBin {
  lower: number
  upper: number
  count: number
  meanProbability: number
  stoneFraction: number
}

/** Equal-width bins over P(Stone); empty bins are kept (count 0) so the diagram shows the whole range. */
export function reliabilityBins (items: readonly Scored[], binCount = 10): ReliabilityBin[] {
  const bins = Array.from({ length: binCount }, (_, i) => ({
    lower: i / binCount, upper: (i + 1) / binCount, count: 0, probabilitySum: 0, stoneCount: 0
  }))
  for (const { probability, label } of items) {
    const bin = bins[Math.min(binCount - 1, Math.floor(probability * binCount))]
    bin.count++
    bin.probabilitySum += probability
    bin.stoneCount += label
  }
  return bins.map(({ lower, upper, count, probabilitySum, stoneCount }) => ({
    lower,
    upper,
    count,
    meanProbability: count === 0 ? NaN : probabilitySum / count,
    stoneFraction: count === 0 ? NaN : stoneCount / count
  }))
}

/** Expected calibration error of P(Stone): count-weighted |mean probability - observed Stone fraction|. */
export function expectedCalibrationError (items: readonly Scored[], binCount = 10): number {
  if (items.length === 0) return NaN
  let error = 0
  for (const bin of reliabilityBins(items, binCount)) {
    if (bin.count > 0) error += bin.count * Math.abs(bin.meanProbability - bin.stoneFraction)
  }
  return error / items.length
}
