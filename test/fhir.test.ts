import t from 'tap'
import { toDiagnosticReport, type FhirReportInput } from '../inference/fhir.js'
import { fhirR4Validator } from './helpers/fhir-schema.js'

const validate = fhirR4Validator('DiagnosticReport')
const uids = { studyInstanceUid: '1.2.3.4', seriesInstanceUid: '1.2.3.4.5', sopInstanceUid: '1.2.3.4.5.6' }
const stone: FhirReportInput = {
  prediction: 'Stone',
  probabilities: { Normal: 0.08, Stone: 0.92 },
  positiveClass: 'Stone',
  threshold: 0.35,
  model: { name: 'kidney-stone-cnn', version: '2.0.0', sha256: 'ab'.repeat(32) },
  identifiers: uids,
  id: 'req-1',
  issued: new Date('2026-11-25T12:00:00Z')
}

t.test('a Stone prediction with DICOM UIDs is a valid R4 DiagnosticReport', async (t) => {
  const report = toDiagnosticReport(stone)
  t.ok(validate(report), JSON.stringify(validate.errors))
  t.equal(report.status, 'preliminary')
  t.same(report.conclusionCode?.[0].coding?.[0], { system: 'http://snomed.info/sct', code: '95570007', display: 'Kidney stone (disorder)' })
  t.same(report.imagingStudy?.[0].identifier, { system: 'urn:dicom:uid', value: 'urn:oid:1.2.3.4' })
  t.same(report.media?.[0].link.identifier, { system: 'urn:dicom:uid', value: 'urn:oid:1.2.3.4.5.6' })
  t.match(report.media?.[0].link.display, /1\.2\.3\.4\.5$/)
  t.equal(report.issued, '2026-11-25T12:00:00.000Z')

  const observation = report.contained?.find((r) => r.resourceType === 'Observation')
  const device = report.contained?.find((r) => r.resourceType === 'Device')
  t.same(report.result, [{ reference: `#${observation?.id}` }], 'result points at the contained Observation')
  t.ok(observation !== undefined && observation.resourceType === 'Observation')
  if (observation?.resourceType !== 'Observation' || device?.resourceType !== 'Device') return
  t.equal(observation.valueQuantity?.value, 0.92)
  t.equal(observation.component?.[0].valueQuantity?.value, 0.35)
  t.equal(observation.interpretation?.[0].coding?.[0].code, 'POS')
  t.same(observation.device, { reference: `#${device.id}` })
  t.equal(device.deviceName?.[0].name, 'kidney-stone-cnn')
  t.equal(device.version?.[0].value, '2.0.0')
})

t.test('a Normal prediction without DICOM is valid and says no finding', async (t) => {
  const report = toDiagnosticReport({ ...stone, prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, identifiers: undefined, id: undefined })
  t.ok(validate(report), JSON.stringify(validate.errors))
  t.equal(report.conclusionCode?.[0].coding?.[0].code, '281900007')
  t.equal(report.imagingStudy, undefined)
  t.equal(report.media, undefined)
  t.match(report.conclusion, /No kidney stone detected .*0\.100 < threshold 0\.350/)
})

t.test('the conclusion states the threshold as the model has it, and a probability near it with the decimals that show its side', async (t) => {
  // On the old code both went through toFixed(3): "No kidney stone detected on this CT slice (model probability 0.202
  // < threshold 0.202)" for P(Stone) 0.2016 against model 2.5.0's threshold 0.2018.
  const near = (probability: number, prediction: 'Normal' | 'Stone'): string | undefined => toDiagnosticReport({
    ...stone, prediction, threshold: 0.2018, probabilities: { Normal: 1 - probability, Stone: probability }
  }).conclusion
  t.match(near(0.2016, 'Normal'), /\(model probability 0\.2016 < threshold 0\.2018\)/)
  t.match(near(0.20179, 'Normal'), /\(model probability 0\.20179 < threshold 0\.2018\)/)
  t.match(near(0.2019, 'Stone'), /\(model probability 0\.202 >= threshold 0\.2018\)/)
  t.match(near(0.92, 'Stone'), /\(model probability 0\.920 >= threshold 0\.2018\)/, 'three decimals where they are enough')
})

t.test('findings travel as Observation components (box, score) with a note saying what they are', async (t) => {
  const findings = [{ box: { x: 245, y: 219, width: 30, height: 28 }, score: 0.97 }, { box: { x: 100, y: 210, width: 16, height: 20 }, score: 0.41 }]
  const report = toDiagnosticReport({ ...stone, findings })
  t.ok(validate(report), JSON.stringify(validate.errors))
  const observation = report.contained?.find((r) => r.resourceType === 'Observation')
  if (observation?.resourceType !== 'Observation') return t.fail('no Observation')
  t.same(observation.component?.slice(1).map((c) => [c.code.text, c.valueString ?? c.valueQuantity?.value]), [
    ['Finding 1: box (image pixels)', 'x=245 y=219 width=30 height=28'], ['Finding 1: score', 0.97],
    ['Finding 2: box (image pixels)', 'x=100 y=210 width=16 height=20'], ['Finding 2: score', 0.41]
  ])
  t.match(observation.note?.[0].text, /not the outline of a stone/)
  const normal = toDiagnosticReport({ ...stone, prediction: 'Normal', probabilities: { Normal: 0.9, Stone: 0.1 }, findings: [] })
  const plain = normal.contained?.find((r) => r.resourceType === 'Observation')
  t.equal(plain?.resourceType === 'Observation' ? plain.component?.length : -1, 1, 'no findings: the threshold component only')
  t.equal(plain?.resourceType === 'Observation' ? plain.note : 'x', undefined)
})

t.test('the schema check is not vacuous: a wrong status or an unknown field fails', async (t) => {
  const report = toDiagnosticReport(stone)
  t.notOk(validate({ ...report, status: 'draft' }))
  t.notOk(validate({ ...report, probability: 0.92 }))
  t.notOk(validate({ ...report, code: undefined }))
})
