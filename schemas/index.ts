import { DicomIdentifiersSchema } from './dicom.js'
import { BatchEntrySchema, BatchResponseSchema } from './batch.js'
import { ErrorSchema } from './error.js'
import { FhirDiagnosticReportSchema } from './fhir.js'
import { HealthSchema, ModelInfoSchema, ModelRefSchema, StatusSchema } from './model.js'
import { PredictionSchema } from './prediction.js'
import { PredictionPageSchema, StoredPredictionSchema } from './records.js'

/** Registered once with addSchema: routes reference them and the OpenAPI document names them. */
export const sharedSchemas = [ErrorSchema, ModelRefSchema, ModelInfoSchema, StatusSchema, HealthSchema, DicomIdentifiersSchema, PredictionSchema,
  FhirDiagnosticReportSchema, BatchEntrySchema, BatchResponseSchema, StoredPredictionSchema, PredictionPageSchema]
