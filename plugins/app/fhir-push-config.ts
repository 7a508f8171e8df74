import { AuthConfigError, SECRET_VARIABLES, secretFrom } from './auth-config.js'

export class FhirPushConfigError extends Error {}

export interface FhirPushConfig {
  url?: string
  maxAttempts: number
  token?: string
}

/**
 * FHIR_SERVER_URL as fetch can POST to: a URL that parses, without a user name or password and without a query or
 * fragment. Before, any `http(s)://…` text was accepted, and fetch refuses a URL carrying credentials (the usual way
 * to write basic authentication) or one it cannot parse: every push then failed as 'the FHIR server could not be
 * reached', ten attempts per study over ten minutes, and was given up. The message never repeats the value, which
 * may hold a password.
 */
function baseUrl (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new FhirPushConfigError('FHIR_SERVER_URL is not a URL')
  }
  if (url.username !== '' || url.password !== '') {
    throw new FhirPushConfigError('FHIR_SERVER_URL carries a user name or password, which is never sent from a URL: give a bearer token in FHIR_SERVER_TOKEN(_FILE)')
  }
  if (url.search !== '' || url.hash !== '') {
    throw new FhirPushConfigError('FHIR_SERVER_URL has a query or fragment: give the FHIR base URL, to which /DiagnosticReport is appended')
  }
  return value.replace(/\/+$/, '')
}

export function loadFhirPushConfig (env: NodeJS.ProcessEnv, url: string | undefined, maxAttempts: number): FhirPushConfig {
  try {
    return { url: url === undefined ? undefined : baseUrl(url), maxAttempts, token: secretFrom(env, SECRET_VARIABLES.fhirServerToken) }
  } catch (error) {
    if (error instanceof AuthConfigError) throw new FhirPushConfigError(error.message)
    throw error
  }
}
