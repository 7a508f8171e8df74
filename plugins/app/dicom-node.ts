import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import { isEncapsulatedSyntax } from '../../inference/dicom/codecs.js'
import { STATUS } from '../../dicom-node/dimse.js'
import { readInstanceKeys } from '../../dicom-node/instance-keys.js'
import { DicomNode, type StoreRequest, type StoreResult } from '../../dicom-node/server.js'
import type { DecodedCharge } from './inflight.js'
import { DIMSE_ROUTE } from './dicom-metrics.js'

/** Uncompressed syntaxes the decoder reads besides the encapsulated ones (inference/dicom/codecs.ts). */
const NATIVE_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99'])

declare module 'fastify' {
  interface FastifyInstance {
    /** The DICOM node's port once listening; undefined while it is off (DICOM_PORT unset). */
    dicomPort: () => number | undefined
  }
}

/**
 * The service as a DICOM node (DICOM_PORT): a C-STORE SCP with C-ECHO whose instances go through app.receiveInstance,
 * as STOW-RS ones do. It listens when the app is ready and stops with it: on close it stops accepting associations,
 * answers the instances being classified, then aborts the associations, before the records store closes.
 */
export default fp(async (app) => {
  const settings = app.config.dicomNode
  let port: number | undefined
  app.decorate('dicomPort', () => port)
  if (settings.port === undefined) return

  const store = async (request: StoreRequest): Promise<StoreResult> => {
    const origin = { caller: `dicom:${request.callingAe}`, route: DIMSE_ROUTE, requestId: randomUUID(), callingAe: request.callingAe }
    const keys = readInstanceKeys(request.bytes, { sopClassUid: request.sopClassUid, sopInstanceUid: request.sopInstanceUid })
    // The instance and its decoded image count in MAX_INFLIGHT_BYTES beside HTTP uploads, charged where an upload's
    // decoded image is: outside it, eight associations' multi-frame instances decoded at once were memory nobody
    // counted, and HTTP uploads were let in on top. Refused, the instance gets A700 and the sender retries later.
    // As an upload's, the decoded image is given back once classified, the instance once answered.
    const account = app.inflight.account()
    const decodedImages = (): DecodedCharge => {
      const images = account.decodedImages()
      let instanceBytes = request.bytes.length
      const reserve = async (decodedBytes: number, held?: boolean): Promise<void> => {
        account.charge(instanceBytes)
        instanceBytes = 0
        await images.reserve(decodedBytes, held)
      }
      return { reserve, giveBack: images.giveBack }
    }
    const outcome = await app.receiveInstance(request.bytes, origin, keys, { decodedImages }).finally(() => account.release())
    if (outcome.classified) return { status: STATUS.success }
    app.log.info({ requestId: origin.requestId, callingAe: request.callingAe, code: outcome.refusal.code, status: outcome.status.toString(16) }, 'C-STORE refused')
    return { status: outcome.status, comment: outcome.comment }
  }
  const node = new DicomNode({
    host: app.config.host,
    port: settings.port,
    aeTitle: settings.aeTitle,
    allowedAes: settings.allowedAes,
    maxAssociations: settings.maxAssociations,
    maxAssociationsPerAe: settings.maxAssociationsPerAe,
    maxPduBytes: settings.maxPduBytes,
    maxInstanceBytes: app.config.maxFileBytes,
    idleTimeoutMs: settings.idleTimeoutMs,
    minRateBytesPerS: settings.minRateBytesPerS,
    acceptsTransferSyntax: (uid) => NATIVE_SYNTAXES.has(uid) || isEncapsulatedSyntax(uid),
    store,
    event: (name, details) => {
      app.log.info({ ...details, event: name }, `DICOM node: ${name}`)
      if (details.refusal !== undefined) app.metrics.dicom.associationRefused(details.refusal, details.callingAe)
      if (details.refusedInstance !== undefined) app.metrics.dicom.instance(DIMSE_ROUTE, details.refusedInstance, details.callingAe)
      for (const { reason } of details.rejectedContexts ?? []) app.metrics.dicom.contextRejected(reason, details.callingAe)
      if (details.refusedCommand !== undefined) app.metrics.dicom.commandRefused(details.command ?? 'other', details.refusedCommand, details.callingAe)
    }
  })
  app.addHook('onReady', async () => {
    port = await node.listen()
    app.log.info({ port, aeTitle: settings.aeTitle }, 'DICOM node listening')
  })
  app.addHook('preClose', async () => { await node.close() })
}, { name: 'dicom-node', dependencies: ['config', 'metrics', 'inflight', 'dicom-intake'] })
