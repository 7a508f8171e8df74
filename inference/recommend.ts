export type ConfidenceBand = 'high' | 'moderate' | 'low'

export const DISCLAIMER =
  'Decision support only, not a diagnosis: this result comes from an automated model reading a single 2D CT ' +
  'slice and must be reviewed by a qualified clinician together with the full study and the clinical context.'

export function confidenceBand (confidence: number): ConfidenceBand {
  if (confidence >= 0.9) return 'high'
  if (confidence >= 0.7) return 'moderate'
  return 'low'
}

const RECOMMENDATIONS: Record<'Stone' | 'Normal', Record<ConfidenceBand, string[]>> = {
  Stone: {
    high: [
      'Findings are consistent with a kidney stone on this slice.',
      'Have a radiologist confirm the stone, its size and location on the full series.',
      'Correlate with symptoms and urinalysis; consider urology referral depending on size and obstruction.'
    ],
    moderate: [
      'A kidney stone is likely on this slice, at moderate confidence.',
      'Radiologist review of this slice and its neighbours is recommended before acting on it.'
    ],
    low: [
      'Low-confidence result: a stone is possible but the model is uncertain.',
      'Radiologist review is required; do not act on this result alone.'
    ]
  },
  Normal: {
    high: [
      'No kidney stone detected on this slice.',
      'A single slice cannot exclude stones elsewhere: review the full series if symptoms persist.'
    ],
    moderate: [
      'No kidney stone detected on this slice, at moderate confidence.',
      'Review the full series if the clinical suspicion of a stone remains.'
    ],
    low: [
      'Low-confidence result: the model is uncertain whether a stone is present.',
      'Radiologist review is required; do not act on this result alone.'
    ]
  }
}

export function recommendations (prediction: string, confidence: number): string[] {
  const byBand = RECOMMENDATIONS[prediction === 'Stone' ? 'Stone' : 'Normal']
  return byBand[confidenceBand(confidence)]
}
