import type { CodeableConcept, DiagnosticReport, Device, Observation, ObservationComponent, Quantity, Reference } from 'fhir/r4.js'
import type { DicomIdentifiers } from './dicom/dataset.js'
import type { Finding } from './findings.js'
import { probabilityText, thresholdText } from './probability-text.js'
import { DISCLAIMER } from './recommend.js'

export interface FhirReportInput {
  prediction: string
  probabilities: Record<string, number>
  positiveClass: string
  threshold: number
  model: { name: string, version: string, sha256?: string }
  identifiers?: DicomIdentifiers
  /** Where the evidence for a Stone answer lies (inference/findings.ts); each becomes two Observation components. */
  findings?: Finding[]
  /** Report id, e.g. the request id, so the report can be traced to the service log. */
  id?: string
  /** When the result was made (default: now). */
  issued?: Date
  /**
   * When the image was acquired (FHIR dateTime; a DICOM's AcquisitionDateTime etc.). Without it: `issued` for a JPEG or
   * PNG (`identifiers` absent), none for a DICOM image, whose acquisition time is then unknown (not in the file, or not
   * recorded: GET /predictions/{id}); the processing time there claimed a 1997 slice was acquired the day it was read.
   */
  effective?: string
}

const SNOMED = 'http://snomed.info/sct'
const UCUM = 'http://unitsofmeasure.org'
const DICOM_UID = 'urn:dicom:uid'

export const KIDNEY_STONE: CodeableConcept = { coding: [{ system: SNOMED, code: '95570007', display: 'Kidney stone (disorder)' }], text: 'Kidney stone' }
export const NO_ABNORMALITY: CodeableConcept = { coding: [{ system: SNOMED, code: '281900007', display: 'No abnormality detected (finding)' }], text: 'No kidney stone detected' }

export const IMAGING_CATEGORY: CodeableConcept = {
  coding: [
    { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'RAD', display: 'Radiology' },
    { system: 'http://terminology.hl7.org/CodeSystem/v2-0074', code: 'CT', display: 'CAT Scan' }
  ],
  text: 'Imaging'
}
const REPORT_CODE: CodeableConcept = {
  coding: [{ system: 'http://loinc.org', code: '18748-4', display: 'Diagnostic imaging study' }],
  text: 'Automated kidney stone classification of a CT slice'
}

export const unitless = (value: number): Quantity => ({ value, unit: '1', system: UCUM, code: '1' })
export const dicomUid = (uid: string): { system: string, value: string } => ({ system: DICOM_UID, value: `urn:oid:${uid}` })

export function escapeXhtml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

const FINDINGS_NOTE = 'Findings: boxes where the model found its evidence, in pixels of the classified image (DICOM: ' +
  'Columns x Rows), origin top-left, strongest first; they show where the model looked, not the outline of a stone.'

/** Finding n as two components: its box as "x=.. y=.. width=.. height=.." (image pixels) and its score. */
function findingComponents (findings: Finding[]): ObservationComponent[] {
  return findings.flatMap(({ box, score }, i) => [
    { code: { text: `Finding ${i + 1}: box (image pixels)` }, valueString: `x=${box.x} y=${box.y} width=${box.width} height=${box.height}` },
    { code: { text: `Finding ${i + 1}: score` }, valueQuantity: unitless(score) }
  ])
}

function conclusionText (stone: boolean, probability: number, threshold: number): string {
  const finding = stone ? 'Kidney stone suspected on this CT slice' : 'No kidney stone detected on this CT slice'
  const comparison = stone ? '>=' : '<'
  return `${finding} (model probability ${probabilityText(probability, threshold)} ${comparison} threshold ${thresholdText(threshold)}). ${DISCLAIMER}`
}

/** The model as a contained Device (id `model`): name, version and the ONNX file's SHA-256. */
export function modelDevice (model: FhirReportInput['model']): Device {
  return {
    resourceType: 'Device',
    id: 'model',
    deviceName: [{ name: model.name, type: 'model-name' }],
    type: { text: 'Kidney stone classification model (software)' },
    version: [
      { value: model.version },
      ...(model.sha256 === undefined ? [] : [{ type: { text: 'ONNX file SHA-256' }, value: model.sha256 }])
    ]
  }
}

/**
 * One prediction -> a FHIR R4 DiagnosticReport (status preliminary: an automated result awaiting review).
 * The probability and threshold travel in a contained Observation and the model in a contained Device, so
 * the report stands alone. DICOM UIDs become logical references (urn:dicom:uid); no patient is referenced
 * because the service never reads patient identity from the upload: the receiving system links the subject.
 */
export function toDiagnosticReport (input: FhirReportInput): DiagnosticReport {
  const stone = input.prediction === input.positiveClass
  const probability = input.probabilities[input.positiveClass]
  const { studyInstanceUid, seriesInstanceUid, sopInstanceUid } = input.identifiers ?? {}
  const issued = (input.issued ?? new Date()).toISOString()
  const findings = input.findings ?? []
  const effective = input.effective ?? (input.identifiers === undefined ? issued : undefined)
  const effectiveDateTime = effective === undefined ? {} : { effectiveDateTime: effective }
  const study: Reference | undefined = studyInstanceUid === undefined
    ? undefined
    : { type: 'ImagingStudy', identifier: dicomUid(studyInstanceUid), display: `Study Instance UID ${studyInstanceUid}` }

  const device = modelDevice(input.model)
  const observation: Observation = {
    resourceType: 'Observation',
    id: 'stone-probability',
    status: 'preliminary',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'imaging', display: 'Imaging' }] }],
    code: { ...KIDNEY_STONE, text: 'Kidney stone probability (model output)' },
    ...effectiveDateTime,
    valueQuantity: unitless(probability),
    interpretation: [{
      coding: [{
        system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation',
        code: stone ? 'POS' : 'NEG',
        display: stone ? 'Positive' : 'Negative'
      }]
    }],
    method: { text: 'Convolutional neural network on a single 2D CT slice; positive at or above the decision threshold' },
    device: { reference: '#model' },
    ...(study === undefined ? {} : { derivedFrom: [study] }),
    component: [{ code: { text: 'Decision threshold' }, valueQuantity: unitless(input.threshold) }, ...findingComponents(findings)],
    ...(findings.length === 0 ? {} : { note: [{ text: FINDINGS_NOTE }] })
  }
  const conclusion = conclusionText(stone, probability, input.threshold)
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    ...(input.id === undefined ? {} : { id: input.id }),
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml"><p>${escapeXhtml(conclusion)}</p></div>` },
    contained: [observation, device],
    status: 'preliminary',
    category: [IMAGING_CATEGORY],
    code: REPORT_CODE,
    ...effectiveDateTime,
    issued,
    result: [{ reference: '#stone-probability' }],
    conclusion,
    conclusionCode: [stone ? KIDNEY_STONE : NO_ABNORMALITY]
  }
  if (study !== undefined) report.imagingStudy = [study]
  if (sopInstanceUid !== undefined) {
    report.media = [{
      comment: 'The classified CT slice',
      link: {
        type: 'Media',
        identifier: dicomUid(sopInstanceUid),
        display: `SOP Instance UID ${sopInstanceUid}${seriesInstanceUid === undefined ? '' : ` in Series Instance UID ${seriesInstanceUid}`}`
      }
    }]
  }
  return report
}

/** The report of a /predict answer (as sent or as recorded), its model named by the ONNX file's SHA-256. */
export function diagnosticReportOf (
  answer: Pick<FhirReportInput, 'prediction' | 'probabilities' | 'threshold' | 'findings'> & { id: string, model: { name: string, version: string }, dicom?: DicomIdentifiers },
  { positiveClass, sha256, issued }: { positiveClass: string, sha256?: string, issued?: Date }
): DiagnosticReport {
  const { id, prediction, probabilities, threshold, findings, model, dicom } = answer
  return toDiagnosticReport({ id, prediction, probabilities, threshold, findings, positiveClass, identifiers: dicom, model: { ...model, sha256 }, issued })
}
