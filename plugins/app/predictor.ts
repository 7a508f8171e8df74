import fp from 'fastify-plugin'
import type { MultipartFile } from '@fastify/multipart'
import type { ClassifyOptions, StageTimings } from '../../inference/classifier.js'
import { NoFileError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'
import { describeDecision } from '../../inference/prediction.js'
import { uploadedBytes } from '../external/multipart.js'
import { RequestTimeoutError } from './errors.js'
import { sniffFormat } from '../../inference/sniff.js'
import type { Prediction } from '../../schemas/prediction.js'

export interface PredictOptions extends ClassifyOptions {
  /** Whether the request has been answered already (its deadline passed): then the upload is not stored. */
  answered?: () => boolean
}

export interface PredictionOutcome {
  prediction: Prediction
  timings: StageTimings
}

/** The bytes of the multipart field, which must be exactly one file. */
export function uploadedFileBytes (field: unknown): Buffer {
  if (Array.isArray(field)) throw new ServiceError('TOO_MANY_FILES', 400, 'Send exactly one file in the field "file".')
  const part = field as Partial<MultipartFile> | undefined
  if (part?.type !== 'file') throw new NoFileError()
  const bytes = uploadedBytes(part as MultipartFile)
  if (bytes.length === 0) throw new NoFileError('The uploaded file is empty.')
  return bytes
}

/** `Server-Timing` header value (milliseconds, standard syntax) for the stages of one prediction. */
export function serverTiming (timings: StageTimings): string {
  return Object.entries(timings).map(([stage, ms]) => `${stage};dur=${ms.toFixed(2)}`).join(', ')
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Sniff, classify, store: one upload to one contract answer. Rejected bytes are never stored. `reserve` charges
     * the decoded image to the request's share of the in-flight byte budget (plugins/app/inflight.ts).
     */
    predict: (bytes: Buffer, options?: PredictOptions) => Promise<PredictionOutcome>
  }
}

export default fp(async (app) => {
  app.decorate('predict', async (bytes: Buffer, options: PredictOptions = {}): Promise<PredictionOutcome> => {
    const format = sniffFormat(bytes)
    if (format === undefined) throw new UnsupportedMediaTypeError()
    const classifier = app.model.get()
    // DICOM: UIDs only, from the parse that decoded the file; patient name, ID and birth date are never read, so
    // they cannot reach the answer or the logs.
    const { timings, dicom, ...decision } = await classifier.classify(bytes, options)
    // Answered meanwhile (408 at HANDLER_TIMEOUT_MS): the caller never learns the id, so nothing is kept.
    if (options.answered?.() === true) throw new RequestTimeoutError('The request was answered before its classification ended.')
    const id = await app.uploads.save(bytes, format)
    return { timings, prediction: { id, ...describeDecision(decision, classifier.spec, dicom) } }
  })
}, { name: 'predictor', dependencies: ['model', 'uploads'] })
