import { Type, type TObject, type TProperties } from '@sinclair/typebox'

/**
 * A query string of these parameters and no other: a filter the route does not have (`caller=`, `status=`) would
 * otherwise be dropped without a word, and an auditor would take every caller's rows for the ones asked for.
 * propertyNames, not additionalProperties: Fastify's Ajv removes additional properties instead of refusing them. The
 * error handler names the parameter (plugins/app/errors.ts).
 */
export function onlyParameters<T extends TProperties> (properties: T): TObject<T> {
  const names = Object.keys(properties)
  // An enum may not be empty: a route that takes none refuses every name.
  return Type.Object(properties, { propertyNames: names.length === 0 ? { not: {} } : { enum: names } })
}
