import fp from 'fastify-plugin'
import pLimit from 'p-limit'
import type { MultipartFile } from '@fastify/multipart'
import { readEachInstanceKeys } from '../../dicom-node/instance-keys.js'
import { oncePerInstance } from '../../dicom-node/repeated-instances.js'
import { summarizeBatch } from '../../inference/batch-summary.js'
import { NoBatchFileError, NoFileError, ServiceError } from '../../inference/errors.js'
import type { RecordOrigin } from '../../records/record.js'
import type { BatchResponse } from '../../schemas/batch.js'
import { uploadedBytes } from '../external/multipart.js'
import { errorBody, InternalError } from './errors.js'
import { withdrawUnanswered, type PredictOptions } from './predictor.js'

/**
 * The parts of the repeated multipart field `files` (one part arrives as a single object, not an array). A file
 * in any other field alongside them is refused: the answer would cover fewer files than were sent, and the series
 * conclusion would leave that slice out without a word.
 */
export function uploadedBatchFiles (body: Record<string, unknown>): Buffer[] {
  const files = filePartsOf(body.files)
  if (files.length === 0) throw new NoBatchFileError()
  if (Object.entries(body).some(([name, field]) => name !== 'files' && filePartsOf(field).length > 0)) {
    throw new ServiceError('VALIDATION_ERROR', 400, 'Every file of a batch goes in the repeated multipart field "files"; ' +
      'this request also has a file in another field, which would not be classified.')
  }
  return files.map((part) => uploadedBytes(part))
}

function filePartsOf (field: unknown): MultipartFile[] {
  const parts = (Array.isArray(field) ? field : field === undefined ? [] : [field]) as Array<Partial<MultipartFile> | undefined>
  return parts.filter((part) => part?.type === 'file') as MultipartFile[]
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Every file through `app.predict` (the single-file path, its micro-batched inference and its record); one bad file
     * never fails the batch, and each refused file gets its own audit event (with its index, never its name).
     */
    predictBatch: (files: Buffer[], origin: RecordOrigin, options?: PredictOptions) => Promise<BatchResponse>
  }
}

export default fp(async (app) => {
  app.decorate('predictBatch', async (files: Buffer[], origin: RecordOrigin, options: PredictOptions = {}): Promise<BatchResponse> => {
    // Enough files in flight to fill one inference batch, without flooding the shared inference queue.
    const slots = pLimit(app.model.get().batching.maxBatchSize)
    const refused = (index: number, error: ServiceError): { error: ReturnType<typeof errorBody> } => {
      app.records.audit({ ...origin, createdAt: new Date(), method: 'POST', status: error.statusCode, code: error.code, fileIndex: index })
      return { error: errorBody(error) }
    }
    // A DICOM instance sent twice is classified once, as in STOW-RS: the first file's answer is the instance's.
    const keys = await readEachInstanceKeys(files)
    const instances = files.map((bytes, index) => ({ bytes, sopInstanceUid: keys[index].sopInstanceUid }))
    const outcomes = await oncePerInstance(instances, async (index) => await slots(async () => {
      const bytes = files[index]
      if (bytes.length === 0) return refused(index, new NoFileError('The uploaded file is empty.'))
      try {
        const { prediction, withdraw } = await app.predict(bytes, origin, options)
        return { result: prediction, withdraw }
      } catch (error) {
        if (error instanceof ServiceError) return refused(index, error)
        app.log.error({ err: error, index }, 'unexpected error in a batch file')
        return refused(index, new InternalError())
      }
    }), refused)
    await withdrawUnanswered(options.answered, outcomes.map((outcome) => 'withdraw' in outcome ? outcome.withdraw : undefined))
    const results = outcomes.map((outcome, index) => ({ index, ...('result' in outcome ? { result: outcome.result } : outcome) }))
    return { results, summary: summarizeBatch(results, app.config.series.minAdjacentSlices) }
  })
}, { name: 'batch-predictor', dependencies: ['predictor', 'model', 'records'] })
