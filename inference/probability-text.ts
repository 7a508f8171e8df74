/**
 * A probability as text beside the threshold it is compared with: three decimals, more when three would put it on the
 * other side of the threshold or on it. With toFixed(3) alone, P(Stone) 0.2016 against model 2.5.0's threshold 0.2018
 * read "model probability 0.202 < threshold 0.202" in the report a clinician reads. The FHIR reports, the web page and
 * the CLI all write probabilities and the threshold with these two.
 */
export function probabilityText (probability: number, threshold: number): string {
  for (let digits = 3; digits < 17; digits++) {
    const text = probability.toFixed(digits)
    if ((Number(text) >= threshold) === (probability >= threshold)) return text
  }
  return String(probability)
}

/** The threshold to all the decimals the model's sidecar gives, three at least: 0.2018, not 0.202 (a report states the rule applied). */
export function thresholdText (threshold: number): string {
  const given = String(threshold)
  return given.includes('e') ? given : threshold.toFixed(Math.max(3, given.split('.')[1]?.length ?? 0))
}
