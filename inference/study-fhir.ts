import type { CodeableConcept, DiagnosticReport, Observation, Reference } from 'fhir/r4.js'
import type { SeriesResult, StudyResult } from '../schemas/study.js'
import { dicomUid, escapeXhtml, IMAGING_CATEGORY, KIDNEY_STONE, modelDevice, NO_ABNORMALITY, unitless } from './fhir.js'
import { probabilityText, thresholdText } from './probability-text.js'
import { DISCLAIMER } from './recommend.js'

const STUDY_REPORT_CODE: CodeableConcept = {
  coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }],
  text: 'Automated kidney stone classification of a CT study, series by series'
}

const mm = (value: number | undefined): string => value === undefined ? '?' : `${value.toFixed(1)} mm`
/** "1 slice", "2 slices": the report is read by clinicians, in sentences. */
const slices = (count: number, what = 'slice'): string => `${count} ${what}${count === 1 ? '' : 's'}`

/** One sentence on one series: its conclusion, where, and how it was reached. */
export function seriesSentence (series: SeriesResult): string {
  const { rule, instances } = series
  const counted = `${instances.classified} of ${instances.received} instances classified`
  if (series.conclusion === 'Undetermined') return `Series ${series.seriesInstanceUid}: no result (${counted}).`
  const ranges = series.positiveRanges.map((r) => r.fromPosition === undefined
    ? `${slices(r.slices)} (${r.fromInstanceNumber === undefined ? `#${r.first + 1}-#${r.last + 1}` : `instances ${r.fromInstanceNumber}-${r.toInstanceNumber ?? '?'}`})`
    : `${slices(r.slices)} from ${mm(r.fromPosition)} to ${mm(r.toPosition)}`)
  const rule_ = `rule: at least ${slices(rule.minAdjacentSlices, 'adjacent slice')} with P(Stone) >= ${thresholdText(rule.threshold)}`
  const maximum = `highest P(Stone) ${probabilityText(series.maxProbability ?? 0, rule.threshold)}`
  // Isolated positives are said in both verdicts: a reader of a Stone report must see a positive slice the rule
  // left out as much as a reader of a Normal one (the study JSON and the CLI line show it either way).
  const isolated = `${slices(series.isolatedPositiveSlices, 'isolated positive slice')} not counted`
  return series.conclusion === 'Stone'
    ? `Series ${series.seriesInstanceUid}: kidney stone suspected on ${ranges.join(' and ')}; ${maximum}; ${series.isolatedPositiveSlices > 0 ? `${isolated}; ` : ''}${counted}; ${rule_}.`
    : `Series ${series.seriesInstanceUid}: no kidney stone detected; ${maximum}; ${isolated}; ${counted}; ${rule_}.`
}

function seriesObservation (series: SeriesResult, index: number, study: Reference): Observation {
  const base: Observation = {
    resourceType: 'Observation',
    id: `series-${index + 1}`,
    status: 'preliminary',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'imaging', display: 'Imaging' }] }],
    code: { ...KIDNEY_STONE, text: 'Kidney stone probability (model output), highest slice of the series' },
    note: [{ text: seriesSentence(series) }],
    method: { text: `Convolutional neural network on each 2D CT slice; the series is positive when at least ${series.rule.minAdjacentSlices} adjacent slices are at or above the decision threshold` },
    ...(series.model === undefined ? {} : { device: { reference: '#model' } }),
    derivedFrom: [study],
    component: [
      { code: { text: 'Decision threshold' }, valueQuantity: unitless(series.rule.threshold) },
      { code: { text: 'Adjacent positive slices needed' }, valueQuantity: unitless(series.rule.minAdjacentSlices) },
      { code: { text: 'Instances received' }, valueQuantity: unitless(series.instances.received) },
      { code: { text: 'Instances classified' }, valueQuantity: unitless(series.instances.classified) },
      { code: { text: 'Instances refused' }, valueQuantity: unitless(series.instances.failed) }
    ]
  }
  if (series.maxProbability === undefined) {
    return { ...base, dataAbsentReason: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error', display: 'Error' }] } }
  }
  const stone = series.conclusion === 'Stone'
  return {
    ...base,
    valueQuantity: unitless(series.maxProbability),
    interpretation: [{
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: stone ? 'POS' : 'NEG', display: stone ? 'Positive' : 'Negative' }]
    }]
  }
}

/**
 * A study result -> one FHIR R4 DiagnosticReport: one contained Observation per series (highest P(Stone), the rule,
 * the instance counts, the positive slice ranges in words) and the model as a contained Device. Status `partial`
 * while a series may still receive instances, `preliminary` once every series is final (automated, awaiting review).
 * No patient is referenced: the service never reads patient identity; the receiving system links the subject.
 */
export function toStudyDiagnosticReport (study: StudyResult, issued: Date = new Date()): DiagnosticReport {
  const imagingStudy: Reference = { type: 'ImagingStudy', identifier: dicomUid(study.studyInstanceUid), display: `Study Instance UID ${study.studyInstanceUid}` }
  const observations = study.series.map((series, i) => seriesObservation(series, i, imagingStudy))
  const model = study.series.find((s) => s.model !== undefined)?.model
  const finding = { Stone: 'Kidney stone suspected in this CT study.', Normal: 'No kidney stone detected in this CT study.', Undetermined: 'No CT instance of this study could be classified.' }[study.verdict]
  const pending = study.final ? '' : ' Instances may still arrive: this report is partial.'
  const leftOut = study.seriesLeftOut === undefined ? '' : ` ${study.seriesLeftOut} more series of this study were not read: a report covers its first ${study.series.length} series.`
  const conclusion = `${finding} ${study.series.map(seriesSentence).join(' ')}${leftOut}${pending} ${DISCLAIMER}`
  const code = { Stone: KIDNEY_STONE, Normal: NO_ABNORMALITY, Undetermined: undefined }[study.verdict]
  return {
    resourceType: 'DiagnosticReport',
    id: study.studyInstanceUid,
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${escapeXhtml(conclusion)}</p></div>` },
    contained: [...observations, ...(model === undefined ? [] : [modelDevice(model)])],
    status: study.final ? 'preliminary' : 'partial',
    category: [IMAGING_CATEGORY],
    code: STUDY_REPORT_CODE,
    issued: issued.toISOString(),
    imagingStudy: [imagingStudy],
    result: observations.map((o) => ({ reference: `#${o.id as string}` })),
    conclusion,
    ...(code === undefined ? {} : { conclusionCode: [code] })
  }
}
