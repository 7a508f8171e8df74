import fp from 'fastify-plugin'
import { ServiceError } from '../../inference/errors.js'
import type { InstanceKeys } from '../../dicom-node/instance-keys.js'
import { StudyMismatchError } from '../../dicom-node/multipart-related.js'
import { CLASSIFIED_SOP_CLASSES, UnsupportedSopClassError } from '../../dicom-node/sop-classes.js'
import { errorComment, failureStatus, type Refusal } from '../../dicom-node/status.js'
import type { RecordOrigin } from '../../records/record.js'
import type { Prediction } from '../../schemas/prediction.js'
import { RequestTimeoutError } from './errors.js'
import type { PredictionOutcome, PredictOptions } from './predictor.js'

export type IntakeOutcome =
  | { classified: true, keys: InstanceKeys, prediction: Prediction, withdraw: PredictionOutcome['withdraw'] }
  /** `status`: the DIMSE status / STOW-RS FailureReason; `comment`: the ErrorComment. */
  | { classified: false, keys: InstanceKeys, refusal: Refusal, status: number, comment: string }

/** An instance refused for `refusal`, with its DIMSE status (the STOW-RS FailureReason) and ErrorComment. */
export function refusedOutcome (keys: InstanceKeys, refusal: Refusal): IntakeOutcome {
  return { classified: false, keys, refusal, status: failureStatus(refusal), comment: errorComment(refusal) }
}

export interface IntakeOptions extends PredictOptions {
  /** The StudyInstanceUID the request names (STOW-RS POST /studies/{uid}): an instance of another study is refused. */
  study?: string
}

/** Where an instance came from: its records' origin and, over DIMSE, the calling AE title (a label of kidney_dicom_instances_total). */
export interface IntakeOrigin extends RecordOrigin {
  callingAe?: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * One DICOM instance received as a DICOM node (C-STORE, STOW-RS): classified through app.predict (so recorded like
     * any answer), or refused with a typed error that is recorded with the instance's UIDs so its study counts it.
     * `keys`: the instance's, as the caller read them from its bytes (readInstanceKeys, with what the C-STORE
     * command says), once: STOW-RS needs them before classification to find repeated instances. Never throws.
     */
    receiveInstance: (bytes: Buffer, from: IntakeOrigin, keys: InstanceKeys, options?: IntakeOptions) => Promise<IntakeOutcome>
  }
}

export default fp(async (app) => {
  app.decorate('receiveInstance', async (bytes: Buffer, from: IntakeOrigin, keys: InstanceKeys, { study, ...options }: IntakeOptions = {}): Promise<IntakeOutcome> => {
    const { callingAe, ...origin } = from
    try {
      // Its request was answered 408 already (STOW-RS): nothing of this instance is looked at, nor kept.
      if (options.answered?.() === true) throw new RequestTimeoutError('The request was answered before this instance was received.')
      // One whose study the keys do not give is classified first: refused for what is wrong with it, or checked below.
      if (study !== undefined && keys.studyInstanceUid !== undefined && keys.studyInstanceUid !== study) throw new StudyMismatchError(study, keys.studyInstanceUid)
      if (keys.sopClassUid !== undefined && !CLASSIFIED_SOP_CLASSES.has(keys.sopClassUid)) throw new UnsupportedSopClassError(keys.sopClassUid)
      const { prediction, withdraw } = await app.predict(bytes, origin, options)
      // The keys are read from the file's first 256 KiB (instance-keys.ts); the study is the whole file's, as decoded.
      if (study !== undefined && prediction.dicom?.studyInstanceUid !== study) {
        await withdraw()
        throw new StudyMismatchError(study, prediction.dicom?.studyInstanceUid)
      }
      app.metrics.dicom.instance(origin.route, 'stored', callingAe)
      return { classified: true, keys, prediction, withdraw }
    } catch (error) {
      if (!(error instanceof ServiceError)) app.log.error({ err: error, route: origin.route, requestId: origin.requestId }, 'DICOM instance: unexpected error')
      const refusal: Refusal = error instanceof ServiceError
        ? { code: error.code, statusCode: error.statusCode, message: error.message }
        : { code: 'INTERNAL_ERROR', statusCode: 500, message: 'The instance could not be processed.' }
      app.metrics.dicom.instance(origin.route, refusal.code, callingAe)
      // Its request was answered 408 meanwhile (STOW-RS): the instance was not refused, its sender was told nothing of it.
      if (keys.studyInstanceUid !== undefined && !(error instanceof RequestTimeoutError) && options.answered?.() !== true) {
        app.records.failedInstance({
          ...origin,
          createdAt: new Date(),
          studyInstanceUid: keys.studyInstanceUid,
          seriesInstanceUid: keys.seriesInstanceUid,
          sopInstanceUid: keys.sopInstanceUid,
          status: refusal.statusCode,
          code: refusal.code
        })
      }
      return refusedOutcome(keys, refusal)
    }
  })
}, { name: 'dicom-intake', dependencies: ['predictor', 'records', 'metrics'] })
