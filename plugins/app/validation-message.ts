/** One schema violation as Fastify reports it (an Ajv error object; only what the wording needs). */
export interface SchemaViolation {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

/** The JSON schema of one path or query parameter, as the route declares it (only what the wording reads). */
export interface ParameterSchema {
  format?: string
  pattern?: string
  anyOf?: Array<{ const?: unknown }>
}

/** Where in the request the violation sits, as a caller names it. */
const PLACES: Record<string, string> = { params: 'path parameter', querystring: 'query parameter', headers: 'header' }

/** Names of the string formats the API's schemas use, for a person. */
const FORMATS: Record<string, string> = { uuid: 'a UUID', 'date-time': 'a date and time in ISO 8601 with a time zone (2026-12-05T08:00:00Z)' }

/** The patterns the API's schemas use, in words. */
const PATTERNS: Record<string, string> = {
  '^[0-9]+(\\.[0-9]+)*$': 'a DICOM UID: digits separated by dots',
  '^[A-Za-z0-9_-]+$': 'the `next` of the previous page, as it was given',
  '^[A-Z][A-Z0-9_]*$': 'an error code in capitals (QUEUE_FULL)'
}

/** JSON types as a person names them. */
const TYPES: Record<string, string> = { integer: 'a whole number', number: 'a number', boolean: 'true or false', string: 'text' }

/** What the parameter must be; undefined when neither its schema nor the violated keyword has a plain wording here. */
function expectation ({ keyword, params }: SchemaViolation, schema: ParameterSchema | undefined): string | undefined {
  // A schema with a format and a pattern (the record id's) fails the pattern first: the format says it better.
  if (schema?.format !== undefined && (keyword === 'pattern' || keyword === 'format')) return `must be ${FORMATS[schema.format] ?? `in the format ${schema.format}`}`
  const values = schema?.anyOf?.map((option) => option.const)
  if (values !== undefined && values.length > 0 && values.every((value) => typeof value === 'string')) return `must be one of ${values.join(', ')}`
  switch (keyword) {
    case 'format': return `must be ${FORMATS[String(params.format)] ?? `in the format ${String(params.format)}`}`
    case 'pattern': return PATTERNS[String(params.pattern)] === undefined ? 'is not of the form this route takes' : `must be ${PATTERNS[String(params.pattern)]}`
    case 'type': return `must be ${TYPES[String(params.type)] ?? String(params.type)}`
    case 'minimum': return `must be at least ${String(params.limit)}`
    case 'maximum': return `must be at most ${String(params.limit)}`
    case 'minLength': return `must be at least ${String(params.limit)} characters long`
    case 'maxLength': return `must be at most ${String(params.limit)} characters long`
    default: return undefined
  }
}

/**
 * The message of a 400 VALIDATION_ERROR, in our words: a path or query parameter by name and what it must be
 * ("The path parameter \"id\" must be a UUID"), rather than Ajv's text or a JSON pointer into "the request params".
 * `schemas` are the route's schemas by context (`params`, `querystring`, ...), where the parameter's own is read.
 */
export function validationMessage (context: string | undefined, violation: SchemaViolation | undefined, schemas?: Record<string, unknown>): string {
  const place = PLACES[context ?? 'body']
  const name = violation?.instancePath.replace(/^\//, '') ?? ''
  if (violation !== undefined && place !== undefined && name !== '' && !name.includes('/')) {
    const properties = (schemas?.[context ?? ''] as { properties?: Record<string, ParameterSchema> } | undefined)?.properties
    const must = expectation(violation, Object.hasOwn(properties ?? {}, name) ? properties?.[name] : undefined)
    return `The ${place} "${name}" ${must ?? 'does not match the API schema'} (see /docs).`
  }
  return `The request ${context ?? 'body'}${name === '' ? '' : ` at /${name}`} does not match the API schema (see /docs).`
}

/** The message of a 400 VALIDATION_ERROR for a parameter the route does not take, named as validationMessage names places. */
export function unknownParameterMessage (context: string | undefined, name: string): string {
  const where = context === 'querystring' ? 'query string' : `request ${context ?? 'body'}`
  return `The ${where} has a parameter this route does not take: ${JSON.stringify(name)} (see /docs).`
}
