import { ErrorSchema } from './error.js'
import { HealthSchema, ModelInfoSchema, ModelRefSchema, StatusSchema } from './model.js'
import { PredictionSchema } from './prediction.js'

/** Registered once with addSchema: routes reference them and the OpenAPI document names them. */
export const sharedSchemas = [ErrorSchema, ModelRefSchema, ModelInfoSchema, StatusSchema, HealthSchema, PredictionSchema]
