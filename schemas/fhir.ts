import { Type, type TSchema } from '@sinclair/typebox'
import { refTo } from './ref.js'

/**
 * The FHIR answer of /predict (Accept: application/fhir+json). Only the top-level facts are listed here;
 * the full resource follows the FHIR R4 DiagnosticReport definition, which the tests check it against.
 */
export const FhirDiagnosticReportSchema = Type.Object({
  resourceType: Type.Literal('DiagnosticReport'),
  id: Type.Optional(Type.String({ description: 'The upload id of the prediction.' })),
  status: Type.Literal('preliminary'),
  conclusion: Type.String(),
  conclusionCode: Type.Array(Type.Unknown(), { description: 'SNOMED CT 95570007 kidney stone or 281900007 no abnormality detected.' }),
  contained: Type.Array(Type.Unknown(), { description: 'The Observation (probability, threshold) and the Device (model, version).' })
}, {
  $id: 'FhirDiagnosticReport',
  title: 'FhirDiagnosticReport',
  additionalProperties: true,
  description: 'FHIR R4 DiagnosticReport: https://hl7.org/fhir/R4/diagnosticreport.html'
})

/**
 * The FHIR answer of GET /studies/{uid}. Its own schema, since the response schema also serializes: under the one
 * prediction's, a study still receiving instances went out `preliminary` whatever the report said (a literal is written
 * as the literal), and a study with no classified instance, whose report has no conclusionCode, was a 500.
 */
export const FhirStudyReportSchema = Type.Object({
  resourceType: Type.Literal('DiagnosticReport'),
  id: Type.String({ description: 'The StudyInstanceUID.' }),
  status: Type.Union([Type.Literal('partial'), Type.Literal('preliminary')], { description: '`partial` while a series may still receive instances, `preliminary` once every series is final.' }),
  conclusion: Type.String(),
  conclusionCode: Type.Optional(Type.Array(Type.Unknown(), { description: 'SNOMED CT 95570007 kidney stone or 281900007 no abnormality detected; absent when no instance could be classified.' })),
  contained: Type.Array(Type.Unknown(), { description: 'One Observation per series and the Device (model, version).' })
}, {
  $id: 'FhirStudyReport',
  title: 'FhirStudyReport',
  additionalProperties: true,
  description: 'FHIR R4 DiagnosticReport of a study: https://hl7.org/fhir/R4/diagnosticreport.html'
})

/** A 200 answer that is JSON, or the FHIR report (`fhir`) when the request's Accept header asks for application/fhir+json. */
export function jsonOrFhirResponse<T extends TSchema> (json: T, description: string, fhir: TSchema = FhirDiagnosticReportSchema) {
  return {
    description,
    content: {
      'application/json': { schema: json },
      'application/fhir+json': { schema: refTo(fhir) }
    }
  }
}

/** The media types of a `jsonOrFhirResponse`, JSON first: what such a route answers without an Accept header. */
export const JSON_OR_FHIR = ['application/json', 'application/fhir+json'] as const
