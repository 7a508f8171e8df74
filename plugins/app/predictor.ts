import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { MultipartFile } from '@fastify/multipart'
import type { Classification, StageTimings } from '../../inference/classifier.js'
import type { ModelSpec } from '../../inference/model-spec.js'
import { NoFileError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'
import { describeDecision } from '../../inference/prediction.js'
import { sniffFormat, type ImageFormat } from '../../inference/sniff.js'
import { sha256Hex, type PredictionRecord, type RecordOrigin } from '../../records/record.js'
import { uploadedBytes } from '../external/multipart.js'
import { answerGone } from './deadline.js'
import { RequestTimeoutError } from './errors.js'
import type { DecodedCharge } from './inflight.js'
import type { Prediction } from '../../schemas/prediction.js'

export interface PredictOptions {
  /** Each file's decoded images, charged to the request's in-flight share and given back once it is classified. */
  decodedImages?: () => DecodedCharge
  /** Whether the request's answer can no longer be given (its deadline passed, its client left): then nothing is kept. */
  answered?: () => boolean
}

export interface PredictionOutcome {
  prediction: Prediction
  timings: StageTimings
  /** A DICOM upload's acquisition time (FHIR dateTime), for reports; not part of the JSON answer. */
  acquired?: string
  /** Removes the kept upload and the record again, for an answer that ends up not given (withdrawUnanswered). */
  withdraw: () => Promise<void>
}

/**
 * For a request of several files (POST /predict/batch, STOW-RS) once every file is done: when the request was
 * answered meanwhile (408 at HANDLER_TIMEOUT_MS), the caller learns none of the ids, so the answers of the files
 * classified before the deadline are withdrawn (their uploads and records removed), as a single /predict keeps nothing
 * then (a retry of the request would otherwise add them again); and RequestTimeoutError is thrown, as the answer is
 * already sent.
 */
export async function withdrawUnanswered (answered: PredictOptions['answered'], withdrawals: Array<PredictionOutcome['withdraw'] | undefined>): Promise<void> {
  if (answered?.() !== true) return
  // A repeated DICOM instance shares its first file's outcome: each answer is withdrawn once.
  await Promise.all([...new Set(withdrawals)].map(async (withdraw) => await withdraw?.()))
  throw new RequestTimeoutError('The request was answered before all its files were classified.')
}

/**
 * What an upload route passes to app.predict and its kin: each file's decoded images charged to the request's
 * in-flight share while it is classified, and the answer gone once the deadline answered it or its client left
 * (nothing is kept then).
 */
export function requestPredictOptions (request: FastifyRequest, reply: FastifyReply): PredictOptions {
  return { decodedImages: () => request.inflight.decodedImages(), answered: answerGone(request, reply) }
}

/** The bytes of the multipart field `file` of the body, which must be exactly one file. */
export function uploadedFileBytes (body: Record<string, unknown>): Buffer {
  const field = body.file
  if (Array.isArray(field)) throw new ServiceError('TOO_MANY_FILES', 400, 'Send exactly one file in the field "file".')
  const part = field as Partial<MultipartFile> | undefined
  if (part?.type !== 'file') {
    // `-F image=@slice.jpg`, as other APIs name the field: "the request has no file" would deny what was sent.
    const elsewhere = Object.values(body).flat().some((other) => (other as Partial<MultipartFile> | undefined)?.type === 'file')
    throw elsewhere
      ? new NoFileError('The request has no file in the multipart field "file", only in a field of another name: send the image in the field "file" (curl -F file=@slice.jpg).')
      : new NoFileError()
  }
  const bytes = uploadedBytes(part as MultipartFile)
  if (bytes.length === 0) throw new NoFileError('The uploaded file is empty.')
  return bytes
}

/** `Server-Timing` header value (milliseconds, standard syntax) for the stages of one prediction. */
export function serverTiming (timings: StageTimings): string {
  return Object.entries(timings).map(([stage, ms]) => `${stage};dur=${ms.toFixed(2)}`).join(', ')
}

interface Classified {
  answer: Prediction
  classification: Classification
  bytes: Buffer
  format: ImageFormat
  uploadFile?: string
  model: PredictionRecord['model']
}

/** The record of one answer: the answer itself, verbatim, and what it was made from (records/record.ts). */
function predictionRecord ({ answer, classification, bytes, format, uploadFile, model }: Classified, origin: RecordOrigin): PredictionRecord {
  const { dicom } = classification
  return {
    ...origin,
    id: answer.id,
    createdAt: new Date(),
    input: { sha256: sha256Hex(bytes), bytes: bytes.length, format, ...(uploadFile === undefined ? {} : { uploadFile }) },
    ...(dicom === undefined ? {} : { dicom: { ...dicom.identifiers, instanceNumber: dicom.instanceNumber, slicePosition: dicom.slicePosition } }),
    model,
    prediction: answer.prediction,
    probabilities: answer.probabilities,
    confidenceBand: answer.confidenceBand,
    timings: { ...classification.timings },
    ...(classification.cam === undefined ? {} : { cam: classification.cam }),
    answer
  }
}

/** What a record says about the model that made it. */
function modelOf ({ spec, modelSha256 }: { spec: ModelSpec, modelSha256: string }): PredictionRecord['model'] {
  return { name: spec.name, version: spec.version, sha256: modelSha256, threshold: spec.threshold, temperature: spec.temperature }
}

interface Answerable {
  id: string
  bytes: Buffer
  format: ImageFormat
  /** Undefined with RECORDS_STORE=off. */
  record?: PredictionRecord
  answered?: () => boolean
}

/**
 * Keeps the upload and commits its record side by side: the answer waits for the slower of the two, not for both in
 * turn, and the records of one model batch reach the database together, in one statement. When the answer is not
 * given after all, what was kept goes again: an upload that could not be kept withdraws its committed record, a
 * record that could not be written removes the upload, and so does the request's deadline passing meanwhile (408:
 * the caller never learns the id). A record write that failed is taken as not committed (docs/records.md). Resolves
 * whether a record was committed.
 */
async function keepAndRecord (app: FastifyInstance, { id, bytes, format, record, answered }: Answerable): Promise<boolean> {
  const [saved, recorded] = await Promise.allSettled([
    app.uploads.save(bytes, format, id),
    record === undefined ? undefined : app.records.savePrediction(record)
  ])
  const refusal = saved.status === 'rejected'
    ? saved.reason
    : recorded.status === 'rejected'
      ? recorded.reason
      : answered?.() === true ? new RequestTimeoutError('The request was answered before its result was kept.') : undefined
  if (refusal === undefined) {
    if (recorded.status === 'fulfilled' && recorded.value?.recorded === false) app.records.answeredWithoutRecord(id, recorded.value.reason)
    return recorded.status === 'fulfilled' && recorded.value?.recorded === true
  }
  await unkeep(app, id, format, { upload: saved.status === 'fulfilled', record: recorded.status === 'fulfilled' && recorded.value?.recorded === true })
  throw refusal
}

/** Removes what was kept of an answer that is not given after all: the upload, and the record if one was committed. */
async function unkeep (app: FastifyInstance, id: string, format: ImageFormat, kept: { upload: boolean, record: boolean }): Promise<void> {
  await Promise.all([kept.upload ? app.uploads.discard(id, format) : undefined, kept.record ? app.records.withdrawPrediction(id) : undefined])
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Sniff, classify, then keep the upload and record it: one upload to one contract answer. Rejected bytes are never
     * kept, and an answer whose record cannot be written is not given (503 RECORDS_UNAVAILABLE, unless
     * RECORDS_REQUIRED=false).
     * `decodedImages` charges the decoded image to the request's share of the in-flight byte budget while the file is
     * classified (plugins/app/inflight.ts).
     */
    predict: (bytes: Buffer, origin: RecordOrigin, options?: PredictOptions) => Promise<PredictionOutcome>
  }
}

export default fp(async (app) => {
  app.decorate('predict', async (bytes: Buffer, origin: RecordOrigin, options: PredictOptions = {}): Promise<PredictionOutcome> => {
    // Answered already (408 at HANDLER_TIMEOUT_MS; a batch's or STOW-RS request's later files): not classified at all.
    if (options.answered?.() === true) throw new RequestTimeoutError('The request was answered before this file was classified.')
    const format = sniffFormat(bytes)
    if (format === undefined) throw new UnsupportedMediaTypeError()
    const classifier = app.model.get()
    // The decoded image is not needed once the file is classified: its charge goes back then, not when the response
    // closes, so that a batch's or a STOW-RS request's other files have the room.
    const decoded = options.decodedImages?.()
    // DICOM: UIDs and slice position only, from the parse that decoded the file; patient name, ID and birth date are
    // never read, so they cannot reach the answer, the record or the logs.
    const classification = await classifier.classify(bytes, { reserve: decoded?.reserve }).finally(() => decoded?.giveBack())
    // Answered meanwhile (408 at HANDLER_TIMEOUT_MS): the caller never learns the id, so nothing is kept.
    if (options.answered?.() === true) throw new RequestTimeoutError('The request was answered before its classification ended.')
    const id = randomUUID()
    const answer: Prediction = { id, ...describeDecision(classification, classifier.spec, classification.dicom) }
    // With RECORDS_STORE=off nothing is built either (the input's SHA-256 is work only a record needs).
    const record = app.records.state === 'off'
      ? undefined
      : predictionRecord({ answer, classification, bytes, format, uploadFile: app.uploads.fileName(id, format), model: modelOf(classifier) }, origin)
    const recorded = await keepAndRecord(app, { id, bytes, format, record, answered: options.answered })
    const withdraw = async (): Promise<void> => { await unkeep(app, id, format, { upload: true, record: recorded }) }
    const acquired = classification.dicom?.acquired
    return { timings: classification.timings, prediction: answer, withdraw, ...(acquired === undefined ? {} : { acquired }) }
  })
}, { name: 'predictor', dependencies: ['model', 'uploads', 'records'] })
