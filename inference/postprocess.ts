import type { ModelSpec } from './model-spec.js'

export interface Decision {
  prediction: string
  classIndex: number
  confidence: number
  probabilities: Record<string, number>
}

/** One frame of a multi-frame DICOM object, classified like a slice. */
export interface FrameDecision extends Decision {
  /** 1-based frame number in the object. */
  frame: number
  slicePosition?: number
}

/** One image's model output row -> class probabilities in the sidecar's class order. */
export function toProbabilities (row: ArrayLike<number>, spec: ModelSpec): number[] {
  if (spec.output.kind === 'probabilities') {
    if (row.length === 1) {
      const positive = row[0]
      return spec.classes.map((name) => (name === spec.positiveClass ? positive : 1 - positive))
    }
    return Array.from(row)
  }
  // Subtracting the maximum keeps exp() finite for large logits.
  const scaled = Array.from(row, (value) => value / spec.temperature)
  const max = Math.max(...scaled)
  const exps = scaled.map((value) => Math.exp(value - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map((value) => value / sum)
}

/** The positive class wins at or above the sidecar's threshold, which is chosen for stone sensitivity. */
export function decide (probabilities: number[], spec: ModelSpec): Decision {
  const positiveIndex = spec.classes.indexOf(spec.positiveClass)
  const negativeIndex = positiveIndex === 0 ? 1 : 0
  const classIndex = probabilities[positiveIndex] >= spec.threshold ? positiveIndex : negativeIndex
  return {
    prediction: spec.classes[classIndex],
    classIndex,
    confidence: probabilities[classIndex],
    probabilities: Object.fromEntries(spec.classes.map((name, i) => [name, probabilities[i]]))
  }
}
