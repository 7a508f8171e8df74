import type { ModelSpec } from '../../inference/model-spec.js'
import { rocAuc } from './metrics.js'

/**
 * The shortcut baseline: logistic regression on an 8x8 thumbnail of the model's own input. At 8x8 no
 * stone is visible, only brightness, contrast phase, field of view and plane, so whatever AUC this probe
 * reaches is explained by acquisition cues; the model's margin over it is what it adds.
 */

export const THUMBNAIL_SIZE = 8

/**
 * 64 grey values in 0..1: the mean of each of the 8x8 equal areas of the model's uint8 HxWxC input (channels
 * averaged). Plain area averaging in JS: no resampling kernel to argue about, and no extra libvips pipeline.
 */
export function thumbnailFeatures (modelInput: Buffer, spec: ModelSpec): Float64Array {
  const { width, height, channels } = spec.input
  const sums = new Float64Array(THUMBNAIL_SIZE * THUMBNAIL_SIZE)
  const counts = new Float64Array(THUMBNAIL_SIZE * THUMBNAIL_SIZE)
  for (let y = 0; y < height; y++) {
    const row = Math.floor(y * THUMBNAIL_SIZE / height) * THUMBNAIL_SIZE
    for (let x = 0; x < width; x++) {
      const cell = row + Math.floor(x * THUMBNAIL_SIZE / width)
      for (let c = 0; c < channels; c++) sums[cell] += modelInput[(y * width + x) * channels + c]
      counts[cell] += channels
    }
  }
  return sums.map((sum, cell) => sum / counts[cell] / 255)
}

export interface LogisticRegression {
  mean: Float64Array
  std: Float64Array
  /** Weights on the standardised features; the last entry is the bias. */
  weights: Float64Array
}

/**
 * L2-regularised logistic regression fitted by Newton's method (IRLS): deterministic and exact for 64
 * features, so the probe needs no optimiser settings and no extra dependency.
 */
export function fitLogisticRegression (
  features: readonly Float64Array[], labels: readonly (0 | 1)[], l2 = 1, iterations = 25
): LogisticRegression {
  const count = features.length
  const dimension = features[0].length
  const mean = new Float64Array(dimension)
  const std = new Float64Array(dimension)
  for (const row of features) row.forEach((value, j) => { mean[j] += value / count })
  for (const row of features) row.forEach((value, j) => { std[j] += (value - mean[j]) ** 2 / count })
  for (let j = 0; j < dimension; j++) std[j] = Math.sqrt(std[j]) || 1
  const design = features.map((row) => {
    const standardised = new Float64Array(dimension + 1)
    row.forEach((value, j) => { standardised[j] = (value - mean[j]) / std[j] })
    standardised[dimension] = 1
    return standardised
  })

  const size = dimension + 1
  const weights = new Float64Array(size)
  for (let iteration = 0; iteration < iterations; iteration++) {
    const gradient = new Float64Array(size)
    const hessian = Array.from({ length: size }, () => new Float64Array(size))
    for (let j = 0; j < dimension; j++) {
      gradient[j] = l2 * weights[j]
      hessian[j][j] = l2
    }
    design.forEach((x, i) => {
      const p = sigmoid(dot(weights, x))
      const curvature = p * (1 - p)
      for (let j = 0; j < size; j++) {
        gradient[j] += (p - labels[i]) * x[j]
        for (let k = 0; k <= j; k++) hessian[j][k] += curvature * x[j] * x[k]
      }
    })
    for (let j = 0; j < size; j++) for (let k = j + 1; k < size; k++) hessian[j][k] = hessian[k][j]
    const step = solveSymmetric(hessian, gradient)
    let largest = 0
    for (let j = 0; j < size; j++) {
      weights[j] -= step[j]
      largest = Math.max(largest, Math.abs(step[j]))
    }
    if (largest < 1e-8) break
  }
  return { mean, std, weights }
}

export function predictProbability (model: LogisticRegression, features: Float64Array): number {
  const dimension = model.mean.length
  let z = model.weights[dimension]
  for (let j = 0; j < dimension; j++) z += model.weights[j] * (features[j] - model.mean[j]) / model.std[j]
  return sigmoid(z)
}

export interface LabelledFeatures {
  features: Float64Array[]
  labels: (0 | 1)[]
}

const RIDGE_GRID = [0.01, 0.1, 1, 10, 100, 1000, 10000, 100000]

/** Fits on train for every ridge strength and keeps the one with the best validation AUC (never test). */
export function selectProbe (train: LabelledFeatures, val: LabelledFeatures): { model: LogisticRegression, l2: number, valAuc: number } {
  let best: { model: LogisticRegression, l2: number, valAuc: number } | undefined
  for (const l2 of RIDGE_GRID) {
    const model = fitLogisticRegression(train.features, train.labels, l2)
    const valAuc = rocAuc(val.features.map((row, i) => ({ probability: predictProbability(model, row), label: val.labels[i] })))
    if (best === undefined || valAuc > best.valAuc) best = { model, l2, valAuc }
  }
  return best as { model: LogisticRegression, l2: number, valAuc: number }
}

function sigmoid (z: number): number {
  return 1 / (1 + Math.exp(-z))
}

function dot (a: Float64Array, b: Float64Array): number {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += a[i] * b[i]
  return sum
}

/** Cholesky solve of A x = b for a symmetric positive definite A (the ridge term guarantees it). */
function solveSymmetric (matrix: Float64Array[], vector: Float64Array): Float64Array {
  const n = vector.length
  const lower = Array.from({ length: n }, () => new Float64Array(n))
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = matrix[i][j]
      for (let k = 0; k < j; k++) sum -= lower[i][k] * lower[j][k]
      lower[i][j] = i === j ? Math.sqrt(Math.max(sum, 1e-12)) : sum / lower[j][j]
    }
  }
  const forward = new Float64Array(n)
  for (let i = 0; i < n; i++) {
    let sum = vector[i]
    for (let k = 0; k < i; k++) sum -= lower[i][k] * forward[k]
    forward[i] = sum / lower[i][i]
  }
  const solution = new Float64Array(n)
  for (let i = n - 1; i >= 0; i--) {
    let sum = forward[i]
    for (let k = i + 1; k < n; k++) sum -= lower[k][i] * solution[k]
    solution[i] = sum / lower[i][i]
  }
  return solution
}
