import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Finding } from '../inference/findings.js'
import { renderOverlay } from '../inference/overlay.js'
import { acceptOnly } from '../plugins/app/accept.js'
import { PredictionNotFoundError, UploadNotKeptError } from '../records/errors.js'
import { errorResponses } from '../schemas/error.js'
import { PredictionIdParamsSchema } from '../schemas/records.js'
import { onlyParameters } from '../schemas/query.js'

const OverlayQuerySchema = onlyParameters({
  heatmap: Type.Optional(Type.Boolean({ default: true, description: '`false`: the boxes only, on the slice as it is.' }))
})

/** Bytes an overlay holds while it is drawn: the decoded slice, the heatmap layer (RGBA) and the PNG (at most RGB). */
const OVERLAY_BYTES_PER_PIXEL = 1 + 4 + 3

interface RecordedAnswer {
  probabilities: Record<string, number>
  findings?: Finding[]
  frames?: Array<{ frame: number, probabilities: Record<string, number> }>
}

/**
 * The frame (0-based) a multi-frame object's answer was given for: its most probably positive frame, the first of
 * equals (inference/classifier.ts), whose probabilities, activation map and findings the answer carries.
 */
function answeredFrame (answer: RecordedAnswer, positiveClass: string): number | undefined {
  const frame = answer.frames?.find((f) => f.probabilities[positiveClass] === answer.probabilities[positiveClass])
  return frame === undefined ? undefined : frame.frame - 1
}

const overlay: FastifyPluginAsyncTypebox = async (app) => {
  const authOn = app.config.auth.mode !== 'none'

  app.get('/predictions/:id/overlay.png', {
    // Refused before the record is read or the slice decoded, as the other records routes refuse what they cannot send.
    onRequest: acceptOnly(['image/png']),
    schema: {
      tags: ['records'],
      summary: 'The slice with where the model looked: heatmap and findings\' boxes, as a PNG of the uploaded size',
      description: 'Drawn from the kept upload (decoded as the model saw it: DICOM through its window, greyscale) and the ' +
        'activation map recorded with the answer: the Stone-minus-Normal map as a viridis heatmap relative to this ' +
        'image\'s own map (transparent at its median, brightest at its peak; viridis reads in greyscale print too), the ' +
        'top finding\'s box solid, the others dashed. 404 UPLOAD_NOT_KEPT once the upload is past UPLOAD_RETENTION. ' +
        'Who may read it: as GET /predictions/{id}. PNG only: an Accept without image/png (or image/*, */*) is 406 NOT_ACCEPTABLE.',
      params: PredictionIdParamsSchema,
      querystring: OverlayQuerySchema,
      response: {
        200: { description: 'PNG, the size of the uploaded image (DICOM: Columns x Rows).', content: { 'image/png': { schema: Type.Unsafe<Buffer>({ type: 'string', format: 'binary' }) } } },
        ...errorResponses(400, 401, 403, 404, 406, 413, 422, 503)
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const record = await app.records.getPredictionRecord(id, app.records.readerScope(request, authOn))
    if (record === undefined) throw new PredictionNotFoundError(id)
    const bytes = record.input.uploadFile === undefined ? undefined : await app.uploads.read(record.input.uploadFile)
    if (bytes === undefined) throw new UploadNotKeptError(id)
    const classifier = app.model.get()
    const answer = record.answer as RecordedAnswer
    const image = await classifier.decodeFullSize(bytes, { reserve: (size) => request.inflight.charge(size * OVERLAY_BYTES_PER_PIXEL) },
      answeredFrame(answer, classifier.spec.positiveClass))
    const findings = answer.findings ?? []
    const png = await renderOverlay({ image, cam: record.cam, findings, spec: classifier.spec, heatmap: request.query.heatmap ?? true })
    return await reply.type('image/png').header('cache-control', 'private, no-store').send(png)
  })
}

export default overlay
