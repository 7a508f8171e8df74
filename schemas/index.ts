import { DicomIdentifiersSchema } from './dicom.js'
import { BatchEntrySchema, BatchResponseSchema } from './batch.js'
import { ErrorSchema } from './error.js'
import { FindingSchema } from './finding.js'
import { FhirDiagnosticReportSchema, FhirStudyReportSchema } from './fhir.js'
import { HealthSchema, ModelInfoSchema, ModelRefSchema, StatusSchema } from './model.js'
import { FramePredictionSchema, PredictionSchema, ProbabilitiesSchema } from './prediction.js'
import { AuditEventPageSchema, AuditEventSchema, PredictionPageSchema, StoredPredictionSchema } from './records.js'
import { StowResponseSchema } from './stow.js'
import { studySchemas } from './study.js'

/** Registered once with addSchema: routes reference them and the OpenAPI document names them. */
export const sharedSchemas = [ErrorSchema, ModelRefSchema, ModelInfoSchema, StatusSchema, HealthSchema, DicomIdentifiersSchema, FindingSchema, ProbabilitiesSchema, FramePredictionSchema, PredictionSchema,
  FhirDiagnosticReportSchema, FhirStudyReportSchema, BatchEntrySchema, BatchResponseSchema, StoredPredictionSchema, PredictionPageSchema,
  AuditEventSchema, AuditEventPageSchema,
  ...studySchemas, StowResponseSchema]
