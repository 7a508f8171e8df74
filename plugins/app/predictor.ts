import fp from 'fastify-plugin'
import type { MultipartFile } from '@fastify/multipart'
import type { Classification, StageTimings } from '../../inference/classifier.js'
import { sniffFormat, type ImageFormat } from '../../inference/decode.js'
import { NoFileError, ServiceError, UnsupportedMediaTypeError } from '../../inference/errors.js'
import { readDicomInstance, type DicomInstance } from '../../inference/dicom/decode-dicom.js'
import { describeDecision } from '../../inference/prediction.js'
import { sha256Hex, type PredictionRecord, type RecordOrigin } from '../../records/record.js'
import type { Prediction } from '../../schemas/prediction.js'

export interface PredictionOutcome {
  prediction: Prediction
  timings: StageTimings
}

/** The bytes of the multipart field, which must be exactly one file. */
export async function uploadedFileBytes (field: unknown): Promise<Buffer> {
  if (Array.isArray(field)) throw new ServiceError('TOO_MANY_FILES', 400, 'Send exactly one file in the field "file".')
  const part = field as Partial<MultipartFile> | undefined
  if (part?.type !== 'file' || part.toBuffer === undefined) throw new NoFileError()
  const bytes = await part.toBuffer()
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
  dicom?: DicomInstance
  model: PredictionRecord['model']
}

/** The record of one answer: the answer itself, verbatim, and what it was made from (records/record.ts). */
function predictionRecord ({ answer, classification, bytes, format, uploadFile, dicom, model }: Classified, origin: RecordOrigin): PredictionRecord {
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

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Sniff, classify, keep the upload, record: one upload to one contract answer. Rejected bytes are never kept, and
     * an answer whose record cannot be written is not given (503 RECORDS_UNAVAILABLE, unless RECORDS_REQUIRED=false).
     */
    predict: (bytes: Buffer, origin: RecordOrigin) => Promise<PredictionOutcome>
  }
}

export default fp(async (app) => {
  app.decorate('predict', async (bytes: Buffer, origin: RecordOrigin): Promise<PredictionOutcome> => {
    const format = sniffFormat(bytes)
    if (format === undefined) throw new UnsupportedMediaTypeError()
    const classifier = app.model.get()
    const classification = await classifier.classify(bytes)
    const { timings, ...decision } = classification
    // UIDs and slice position only: patient name, ID and birth date are never read, so they cannot reach the answer or the logs.
    const dicom = format === 'dicom' ? readDicomInstance(bytes) : undefined
    const id = await app.uploads.save(bytes, format)
    const answer: Prediction = { id, ...describeDecision(decision, classifier.spec, dicom?.identifiers) }
    const { spec, modelSha256 } = classifier
    const model = { name: spec.name, version: spec.version, sha256: modelSha256, threshold: spec.threshold, temperature: spec.temperature }
    try {
      await app.records.savePrediction(predictionRecord({ answer, classification, bytes, format, uploadFile: app.uploads.fileName(id, format), dicom, model }, origin))
    } catch (error) {
      await app.uploads.discard(id, format)
      throw error
    }
    return { timings, prediction: answer }
  })
}, { name: 'predictor', dependencies: ['model', 'uploads', 'records'] })
