import createClient, { type Client, type Middleware } from 'openapi-fetch'
import type { components, paths } from './api-types.js'
import { retryingFetch, retryPolicy, type RetryPolicy } from './retry.js'

export { DEFAULT_RETRY, retryAfterMs, type RetryEvent, type RetryPolicy } from './retry.js'

/**
 * The typed HTTP client: `api-types.ts` is generated from openapi.yaml by openapi-typescript
 * (`npm run client:types`) and openapi-fetch does the requests. No Node-only imports, so a browser
 * frontend uses this file as it is.
 */
export type KidneyStoneClient = Client<paths>
export type Prediction = components['schemas']['Prediction']
export type ErrorReply = components['schemas']['Error']
/** Where a Stone answer's evidence lies: a box in the uploaded image's pixels and its score. */
export type Finding = components['schemas']['Finding']
/** A recorded answer (GET /predictions/{id}): the Prediction as it was sent, plus createdAt and caller. */
export type StoredPrediction = components['schemas']['StoredPrediction']
export type PredictionPage = components['schemas']['PredictionPage']
/** GET /audit-events: one refused request (no bytes, no file names), and a page of them with its cursor. */
export type AuditEvent = components['schemas']['AuditEvent']
export type AuditEventPage = components['schemas']['AuditEventPage']

export interface ClientAuth {
  /** Sent in `apiKeyHeader` (default x-api-key) when the service runs with AUTH_MODE=api-key or any. */
  apiKey?: string
  apiKeyHeader?: string
  /** Sent as `Authorization: Bearer <token>` when the service runs with AUTH_MODE=jwt or any. */
  token?: string
}

export interface ClientOptions {
  /** The fetch to send requests with (default: the global one). */
  fetch?: (request: Request) => Promise<Response>
  /**
   * 429 and 503 with Retry-After are waited for and sent again (client/retry.ts); default DEFAULT_RETRY
   * (5 tries, at most 60 s per wait); `false` returns them at once.
   */
  retry?: Partial<RetryPolicy> | false
}

export function createKidneyStoneClient (baseUrl: string, auth: ClientAuth = {}, options: ClientOptions = {}): KidneyStoneClient {
  const send = options.fetch ?? (async (request: Request) => await fetch(request))
  const client = createClient<paths>({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    fetch: options.retry === false ? send : retryingFetch(send, retryPolicy(options.retry))
  })
  const credentials: Middleware = {
    onRequest ({ request }) {
      if (auth.apiKey !== undefined) request.headers.set(auth.apiKeyHeader ?? 'x-api-key', auth.apiKey)
      if (auth.token !== undefined) request.headers.set('authorization', `Bearer ${auth.token}`)
      return request
    }
  }
  client.use(credentials)
  return client
}

export interface UploadFile {
  name: string
  bytes: Blob | Uint8Array
}

function asBlob (bytes: Blob | Uint8Array): Blob {
  return bytes instanceof Blob ? bytes : new Blob([bytes as BlobPart])
}

/** A multipart body for openapi-fetch: the generated type says `string` (format binary), the wire carries a file. */
export function multipartBody (field: string, files: UploadFile[]): { body: Record<string, never>, bodySerializer: () => FormData } {
  return {
    body: {},
    bodySerializer: () => {
      const form = new FormData()
      for (const file of files) form.append(field, asBlob(file.bytes), file.name)
      return form
    }
  }
}

export type FhirDiagnosticReport = components['schemas']['FhirDiagnosticReport']

interface Answer<T> {
  data?: T
  error?: ErrorReply
  response: Response
}

/**
 * POST /predict for one file. The operation has two success media types, so openapi-fetch types `data` as
 * their union; the Accept header sent here decides which one comes back, and the result is typed to match.
 */
export async function predictSlice (client: KidneyStoneClient, file: UploadFile): Promise<Answer<Prediction>> {
  const { data, error, response } = await client.POST('/predict', { ...multipartBody('file', [file]), headers: { accept: 'application/json' } })
  return { data: data as Prediction | undefined, error, response }
}

/** POST /predict answered as a FHIR R4 DiagnosticReport (Accept: application/fhir+json). */
export async function predictSliceAsFhir (client: KidneyStoneClient, file: UploadFile): Promise<Answer<FhirDiagnosticReport>> {
  const { data, error, response } = await client.POST('/predict', { ...multipartBody('file', [file]), headers: { accept: 'application/fhir+json' } })
  return { data: data as FhirDiagnosticReport | undefined, error, response }
}

/** GET /predictions/{id} as the FHIR R4 DiagnosticReport of the recorded answer. */
export async function storedPredictionAsFhir (client: KidneyStoneClient, id: string): Promise<Answer<FhirDiagnosticReport>> {
  const { data, error, response } = await client.GET('/predictions/{id}', { params: { path: { id } }, headers: { accept: 'application/fhir+json' } })
  return { data: data as FhirDiagnosticReport | undefined, error, response }
}

/** GET /predictions/{id}/overlay.png: the slice with the heatmap (unless `heatmap` is false) and the findings' boxes. */
export async function predictionOverlay (client: KidneyStoneClient, id: string, heatmap = true): Promise<Answer<Blob>> {
  const { data, error, response } = await client.GET('/predictions/{id}/overlay.png', { params: { path: { id }, query: { heatmap } }, parseAs: 'blob' })
  return { data: data as Blob | undefined, error, response }
}

/** The results of one study (GET /studies/{uid}): each series with its slices and the server's series conclusion. */
export type StudyResult = components['schemas']['StudyResult']

/**
 * GET /studies/{studyInstanceUid} as JSON (the operation also answers FHIR; the Accept header sent here decides);
 * `mine`: only the instances this caller sent, also with the records:read-all scope.
 */
export async function studyResult (client: KidneyStoneClient, studyInstanceUid: string, { mine = false } = {}): Promise<Answer<StudyResult>> {
  const { data, error, response } = await client.GET('/studies/{studyInstanceUid}', { params: { path: { studyInstanceUid }, query: { mine } }, headers: { accept: 'application/json' } })
  return { data: data as StudyResult | undefined, error, response }
}
