import { createHash } from 'node:crypto'
import { basename } from 'node:path'
import { readInstanceKeys } from '../dicom-node/instance-keys.js'
import { RepeatedInstances } from '../dicom-node/repeated-instances.js'
import { Classifier } from '../inference/classifier.js'
import type { DicomWindow } from '../inference/dicom/dataset.js'
import type { WindowSource } from '../inference/dicom/decode-dicom.js'
import { ServiceError } from '../inference/errors.js'
import { describeDecision } from '../inference/prediction.js'
import { createKidneyStoneClient, predictSlice, type ClientAuth, type KidneyStoneClient, type RetryPolicy } from '../client/index.js'
import type { FileError, FileResult } from './output.js'

/** Classifies one file's bytes; never throws for a bad file, it answers with the file's typed error. */
export interface FilePredictor {
  predict: (file: string, bytes: Buffer) => Promise<FileResult>
  close: () => Promise<void>
}

export function toFileError (error: unknown): FileError {
  if (error instanceof ServiceError) return { code: error.code, message: error.message, statusCode: error.statusCode }
  return { code: 'INTERNAL_ERROR', message: error instanceof Error ? error.message : String(error) }
}

export interface InProcessOptions {
  modelPath: string
  maxPixels: number
  threads: number
  dicomWindow?: DicomWindow
  dicomWindowSource?: WindowSource
  dicomMaxFrames?: number
}

/** Runs the service's own inference code (inference/classifier.ts) in this process: no server needed. */
export async function inProcessPredictor (options: InProcessOptions): Promise<FilePredictor> {
  const classifier = await Classifier.load(options.modelPath, {
    maxPixels: options.maxPixels,
    intraOpThreads: options.threads,
    interOpThreads: 1,
    graphOptimization: 'all',
    dicomWindow: options.dicomWindow,
    dicomWindowSource: options.dicomWindowSource,
    dicomMaxFrames: options.dicomMaxFrames
  })
  return {
    async predict (file, bytes) {
      try {
        const classification = await classifier.classify(bytes)
        return { file, ...describeDecision(classification, classifier.spec, classification.dicom) }
      } catch (error) {
        return { file, error: toFileError(error) }
      }
    },
    close: async () => { await classifier.close() }
  }
}

/** Sends each file to a running service's POST /predict through the generated client (which waits out 429/503). */
export function remotePredictor (baseUrl: string, auth: ClientAuth, retry: RetryPolicy): FilePredictor {
  const client: KidneyStoneClient = createKidneyStoneClient(baseUrl, auth, { retry })
  return {
    async predict (file, bytes) {
      try {
        const { data, error, response } = await predictSlice(client, { name: basename(file), bytes })
        if (data !== undefined) return { file, ...data }
        return { file, error: { code: error?.code ?? `HTTP_${response.status}`, message: error?.message ?? response.statusText, statusCode: response.status } }
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code
        return { file, error: { code: 'NETWORK_ERROR', message: `${baseUrl}: ${cause ?? (error as Error).message}` } }
      }
    },
    close: async () => {}
  }
}

/**
 * Each SOP Instance UID of a run classified once, as in one POST /predict/batch request: a later file of it with the
 * same bytes gets the first file's result, with other bytes DUPLICATE_SOP_INSTANCE (dicom-node/repeated-instances.ts).
 * Compared by SHA-256, so the run keeps no file in memory.
 */
export function eachInstanceOnce (predictor: FilePredictor): FilePredictor {
  const repeated = new RepeatedInstances<FileResult>('run')
  return {
    async predict (file, bytes) {
      const { sopInstanceUid } = readInstanceKeys(bytes)
      if (sopInstanceUid === undefined) return await predictor.predict(file, bytes)
      const result = await repeated.outcome({ bytes: createHash('sha256').update(bytes).digest(), sopInstanceUid },
        async () => await predictor.predict(file, bytes), (error) => ({ file, error: toFileError(error) }))
      return { ...result, file }
    },
    close: async () => { await predictor.close() }
  }
}
