/** What a variable checked by a pattern takes, in words: the schema's regular expression is no message. */
const FORMS: Record<string, string> = {
  MODEL_CLASSES: 'give two or more class names, comma-separated (Normal,Stone)',
  UPLOAD_RETENTION: 'give an age (30m, 24h, 7d) or none',
  RECORD_RETENTION: 'give an age (90d, 12h) or forever',
  DICOM_MODALITIES: 'give Modality values in capitals, comma-separated (CT, or CT,MR)',
  AUTH_API_KEY_HEADER: 'give a header name of letters, digits and hyphens (x-api-key)',
  AUTH_JWT_SCOPE_CLAIM: 'give a claim name or a dotted path to it (scope, realm_access.roles)',
  RECORDS_READ_ALL_SCOPE: 'give one scope name, without spaces',
  FHIR_SERVER_URL: 'give the FHIR base URL, starting with http:// or https://'
}

/** Variables whose value a message does not repeat: a URL may carry a password. */
const NOT_REPEATED = new Set(['FHIR_SERVER_URL'])

interface ValueSchema {
  type?: unknown
  anyOf?: Array<{ const?: unknown }>
  pattern?: unknown
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
}

/** What a numeric variable takes, from its schema: "give a whole number from 1 to 1000", "give a number above 0". */
function numberForm (schema: ValueSchema): string | undefined {
  if (schema.type !== 'integer' && schema.type !== 'number') return undefined
  const what = schema.type === 'integer' ? 'a whole number' : 'a number'
  const { minimum, maximum, exclusiveMinimum } = schema
  if (minimum !== undefined && maximum !== undefined) return `give ${what} from ${minimum} to ${maximum}`
  const low = minimum !== undefined ? `of at least ${minimum}` : exclusiveMinimum !== undefined ? `above ${exclusiveMinimum}` : undefined
  const range = [low, maximum === undefined ? undefined : `at most ${maximum}`].filter((part) => part !== undefined).join(' and ')
  return `give ${what}${range === '' ? '' : ` ${range}`}`
}

/**
 * The start-up message for a variable whose value fails its schema, in our words, never TypeBox's: AUTH_MODE=apikey
 * was "Expected union value", UPLOAD_RETENTION=1w "Expected string to match '^(none|[0-9]+[smhd])$'", PORT=eighty
 * "Expected integer".
 */
export function envValueMessage (name: string, value: unknown, failedSchema: object): string {
  const which = NOT_REPEATED.has(name)
    ? `Invalid environment variable ${name} (its value is not repeated: it may hold a password)`
    : `Invalid environment variable ${name}=${JSON.stringify(value)}`
  const schema = failedSchema as ValueSchema
  const options = schema.anyOf?.map((option) => option.const)
  if (options !== undefined && options.length > 0 && options.every((option) => typeof option === 'string')) return `${which}: give one of ${options.join(', ')}`
  const form = typeof schema.pattern === 'string' ? FORMS[name] : undefined
  return `${which}: ${form ?? numberForm(schema) ?? (schema.type === 'boolean' ? 'give true or false' : 'the value is not one it takes')}`
}
