import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { toStudyDiagnosticReport } from '../inference/study-fhir.js'
import { acceptOnly, wantsFhir } from '../plugins/app/accept.js'
import { StudyNotFoundError } from '../records/errors.js'
import { errorResponses } from '../schemas/error.js'
import { FhirStudyReportSchema, JSON_OR_FHIR, jsonOrFhirResponse } from '../schemas/fhir.js'
import { refTo } from '../schemas/ref.js'
import { callerOf } from '../plugins/app/record-origin.js'
import { StudyParamsSchema, StudyQuerySchema, StudyResultSchema } from '../schemas/study.js'

const studies: FastifyPluginAsyncTypebox = async (app) => {
  const authOn = app.config.auth.mode !== 'none'

  app.get('/studies/:studyInstanceUid', {
    onRequest: acceptOnly(JSON_OR_FHIR),
    schema: {
      tags: ['studies'],
      summary: 'The results of one study: each series with its instances, slice probabilities in order and its conclusion',
      description: 'Built from the records store, whichever way the instances came (DICOM C-STORE, STOW-RS, /predict, ' +
        '/predict/batch), so every replica gives the same answer. A series is final SERIES_IDLE_SECONDS after its last ' +
        'instance. With `Accept: application/fhir+json` (preferred by its q): one FHIR R4 DiagnosticReport for the study; an Accept naming neither JSON type is 406 NOT_ACCEPTABLE. Access as for ' +
        '`GET /predictions/{id}`: with authentication on, a caller reads only the instances it sent unless its credentials ' +
        'carry the `records:read-all` scope, which reads a study as its owner sent it: the caller that first had one of its instances ' +
        'classified, of those STUDY_OWNERS lists when it is set (what other callers sent under its UID shows in their own views only; ' +
        'instances pushed over DICOM belong to `dicom:<calling AE title>`).',
      params: StudyParamsSchema,
      querystring: StudyQuerySchema,
      response: {
        200: jsonOrFhirResponse(refTo(StudyResultSchema), 'The study result, as JSON or as a FHIR R4 DiagnosticReport (chosen by the Accept header).', FhirStudyReportSchema),
        ...errorResponses(400, 401, 403, 404, 406, 503)
      }
    }
  }, async (request, reply) => {
    const scope = app.records.readerScope(request, authOn)
    const caller = request.query.mine === true ? callerOf(request) : scope
    const { studyInstanceUid } = request.params
    const study = await app.studyResult(studyInstanceUid, caller)
    if (study === undefined) throw new StudyNotFoundError(studyInstanceUid, scope === undefined ? undefined : app.config.records.readAllScope)
    if (wantsFhir(request.headers.accept)) {
      return await reply.type('application/fhir+json; charset=utf-8').send(toStudyDiagnosticReport(study))
    }
    return study
  })
}

export default studies
