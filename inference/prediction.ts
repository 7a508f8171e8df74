import type { Prediction } from '../schemas/prediction.js'
import type { DicomInstance } from './dicom/dataset.js'
import type { ModelSpec } from './model-spec.js'
import type { Decision, FrameDecision } from './postprocess.js'
import { DISCLAIMER, confidenceBand, recommendations } from './recommend.js'

export type PredictionFields = Omit<Prediction, 'id'>

/**
 * A decision in the /predict contract's words, without the upload id. The service, the batch endpoint and
 * the CLI's in-process mode all answer with this, so a result reads the same whichever way it was made.
 */
export function describeDecision (decision: Decision & { frames?: FrameDecision[] }, spec: ModelSpec, dicom?: DicomInstance): PredictionFields {
  return {
    prediction: decision.prediction as Prediction['prediction'],
    classIndex: decision.classIndex as Prediction['classIndex'],
    confidence: decision.confidence,
    probabilities: { Normal: decision.probabilities.Normal, Stone: decision.probabilities.Stone },
    confidenceBand: confidenceBand(decision.confidence),
    threshold: spec.threshold,
    recommendations: recommendations(decision.prediction, decision.confidence),
    model: { name: spec.name, version: spec.version },
    disclaimer: DISCLAIMER,
    ...(dicom === undefined ? {} : { dicom: dicomEcho(dicom) }),
    ...(decision.frames === undefined ? {} : { frames: decision.frames.map(frameFields) })
  }
}

/** UIDs and place in the series; never the acquisition time (kept for the FHIR report only). */
function dicomEcho ({ identifiers, instanceNumber, slicePosition }: DicomInstance): NonNullable<Prediction['dicom']> {
  return {
    ...identifiers,
    ...(instanceNumber === undefined ? {} : { instanceNumber }),
    ...(slicePosition === undefined ? {} : { slicePosition })
  }
}

function frameFields ({ frame, slicePosition, ...decision }: FrameDecision): NonNullable<Prediction['frames']>[number] {
  return {
    frame,
    ...(slicePosition === undefined ? {} : { slicePosition }),
    prediction: decision.prediction as Prediction['prediction'],
    probabilities: { Normal: decision.probabilities.Normal, Stone: decision.probabilities.Stone }
  }
}
