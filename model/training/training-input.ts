import type { ModelSpec } from '../../inference/model-spec.js'

/** The input contract the model is trained for; train.py writes the same values into the sidecar. */
export const TRAINING_INPUT: ModelSpec['input'] = {
  width: 224, height: 224, channels: 1, layout: 'NCHW', resize: 'contain', scale: 1 / 255, mean: [0], std: [1]
}

/** Enough of a spec for the preprocessing functions, which read only `input`. */
export const TRAINING_SPEC = { input: TRAINING_INPUT } as ModelSpec
