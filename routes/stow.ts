import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import pLimit from 'p-limit'
import { readEachInstanceKeys } from '../dicom-node/instance-keys.js'
import { requireDicomParts, stowBoundary, splitRelated } from '../dicom-node/multipart-related.js'
import { oncePerInstance } from '../dicom-node/repeated-instances.js'
import { acceptOnly } from '../plugins/app/accept.js'
import { refusedOutcome, type IntakeOutcome } from '../plugins/app/dicom-intake.js'
import { requestPredictOptions, withdrawUnanswered } from '../plugins/app/predictor.js'
import { unlessAnswered } from '../plugins/app/deadline.js'
import { recordOrigin } from '../plugins/app/record-origin.js'
import { errorResponses } from '../schemas/error.js'
import { refTo } from '../schemas/ref.js'
import { StowResponseSchema } from '../schemas/stow.js'
import { StudyParamsSchema } from '../schemas/study.js'
import { onlyParameters } from '../schemas/query.js'

/** Retrieve URL (0008,1190), Type 2 (PS3.18 Table I.1-1): present, and empty, as nothing stored here can be retrieved. */
const NO_RETRIEVE_URL = { vr: 'UR' } as const
/** An empty DICOM JSON attribute has no Value (PS3.18 F.2.5); `[""]` would be a UID that is not one. */
const uiAttribute = (uid: string | undefined): { vr: 'UI', Value?: [string] } => uid === undefined ? { vr: 'UI' } : { vr: 'UI', Value: [uid] }

/** PS3.18 10.5.3: 200 all stored, 202 some failed, 409 none stored. */
function stowStatus (outcomes: IntakeOutcome[]): 200 | 202 | 409 {
  const stored = outcomes.filter((o) => o.classified).length
  return stored === outcomes.length ? 200 : stored === 0 ? 409 : 202
}

const stow: FastifyPluginAsyncTypebox = async (app) => {
  // The body is read into memory as it arrives, each chunk charged to the request's share of the in-flight byte budget
  // (MAX_INFLIGHT_BYTES): a study too large for it is refused while it uploads (413 alone, 503 while others hold it).
  app.addContentTypeParser('multipart/related', async (request: FastifyRequest, payload: AsyncIterable<Buffer>) => {
    const chunks: Buffer[] = []
    for await (const chunk of request.inflight.receive(payload)) chunks.push(chunk)
    return Buffer.concat(chunks)
  })

  const response = {
    200: { description: 'Every instance stored.', content: { 'application/dicom+json': { schema: refTo(StowResponseSchema) } } },
    202: { description: 'Some instances stored, some failed (FailedSOPSequence).', content: { 'application/dicom+json': { schema: refTo(StowResponseSchema) } } },
    409: { description: 'No instance stored (FailedSOPSequence says why).', content: { 'application/dicom+json': { schema: refTo(StowResponseSchema) } } },
    ...errorResponses(400, 401, 403, 406, 413, 415, 503)
  }
  const description = 'DICOMweb Store (PS3.18 10.5): `Content-Type: multipart/related; type="application/dicom"; boundary=...`, ' +
    'one DICOM Part 10 file per part, each of `Content-Type: application/dicom` (or none: a part of another type, application/octet-stream ' +
    'included, is 415 UNSUPPORTED_MEDIA_TYPE naming it, before any part is classified), at most `STOW_MAX_INSTANCES` parts (more is 400 TOO_MANY_FILES). Each CT instance is classified and recorded as a /predict answer is; each other ' +
    'instance is refused with a FailureReason. The answer is DICOM JSON: 200 all stored, 202 some failed, 409 none stored; an Accept ' +
    'without application/dicom+json or application/json (the XML form alone) is 406 NOT_ACCEPTABLE before anything is stored. ' +
    'Results per series and study: `GET /studies/{StudyInstanceUID}`. Needs the `predict` scope when authentication is on.'

  /** One STOW-RS request; `study`: the StudyInstanceUID its path names (POST /studies/{uid}), whose instances alone are stored. */
  const store = async (request: FastifyRequest, reply: FastifyReply, study?: string): Promise<FastifyReply> => await unlessAnswered(reply, async () => {
    const parts = splitRelated(request.body as Buffer, stowBoundary(request.headers['content-type']), app.config.stowMaxInstances)
    requireDicomParts(parts)
    // Both paths are the one STOW-RS service: one route in the records and in kidney_dicom_instances_total.
    const origin = { ...recordOrigin(request), route: '/studies' }
    const options = { ...requestPredictOptions(request, reply), study }
    const slots = pLimit(app.model.get().batching.maxBatchSize)
    const keys = await readEachInstanceKeys(parts.map((part) => part.body))
    const outcomes = await oncePerInstance(parts.map((part, i) => ({ bytes: part.body, sopInstanceUid: keys[i].sopInstanceUid })),
      async (i) => await slots(async () => await app.receiveInstance(parts[i].body, origin, keys[i], options)),
      (i, { code, statusCode, message }) => refusedOutcome(keys[i], { code, statusCode, message }))
    await withdrawUnanswered(options.answered, outcomes.map((outcome) => outcome.classified ? outcome.withdraw : undefined))
    const reference = (outcome: IntakeOutcome) => ({
      '00081150': uiAttribute(outcome.keys.sopClassUid),
      '00081155': uiAttribute(outcome.keys.sopInstanceUid),
      ...(outcome.classified ? {} : { '00081197': { vr: 'US' as const, Value: [outcome.status] as [number] } })
    })
    const stored = outcomes.filter((o) => o.classified).map((outcome) => ({ ...reference(outcome), '00081190': NO_RETRIEVE_URL }))
    const failed = outcomes.filter((o) => !o.classified).map(reference)
    return await reply.code(stowStatus(outcomes)).type('application/dicom+json').send({
      '00081190': NO_RETRIEVE_URL,
      ...(stored.length === 0 ? {} : { '00081199': { vr: 'SQ', Value: stored } }),
      ...(failed.length === 0 ? {} : { '00081198': { vr: 'SQ', Value: failed } })
    })
  })

  // DICOM JSON only: a client asking for the XML form alone (dcm4che's stowrs does by default) is refused before any
  // instance is stored, not answered in a form it cannot read after storing them (it would send them all again).
  const onRequest = acceptOnly(['application/dicom+json', 'application/json'])

  app.post('/studies', {
    onRequest,
    schema: { tags: ['studies'], summary: 'STOW-RS: store (classify) the DICOM instances of one or more studies', description, querystring: onlyParameters({}), consumes: ['multipart/related'], response }
  }, async (request, reply) => await store(request, reply))

  app.post('/studies/:studyInstanceUid', {
    onRequest,
    schema: {
      tags: ['studies'],
      summary: 'STOW-RS: store (classify) the DICOM instances of one study',
      description: `${description} An instance of another study than the path names is not stored: FailureReason 49152 (C000, STUDY_MISMATCH); the others are.`,
      params: StudyParamsSchema,
      querystring: onlyParameters({}),
      consumes: ['multipart/related'],
      response
    }
  }, async (request, reply) => await store(request, reply, request.params.studyInstanceUid))
}

export default stow
