import { Type, type Static } from '@sinclair/typebox'
import { ErrorSchema } from './error.js'
import { fileField, PredictionSchema } from './prediction.js'
import { refTo } from './ref.js'

export function batchBodySchema (maxFiles: number) {
  return Type.Object({
    files: Type.Optional(Type.Array(fileField('A JPEG, PNG or DICOM file; repeat the field for each file.'), {
      maxItems: maxFiles,
      description: `Up to ${maxFiles} files (BATCH_MAX_FILES), images and DICOM mixed.`
    }))
  })
}

export const BatchEntrySchema = Type.Object({
  index: Type.Integer({ minimum: 0, description: 'Position of the file in the request (0-based).' }),
  result: Type.Optional(refTo(PredictionSchema)),
  error: Type.Optional(refTo(ErrorSchema))
}, { $id: 'BatchEntry', title: 'BatchEntry', description: 'Exactly one of result and error is present.' })

export const BatchResponseSchema = Type.Object({
  results: Type.Array(refTo(BatchEntrySchema), { description: 'One entry per file, in request order.' }),
  summary: Type.Object({
    files: Type.Integer(),
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    counts: Type.Object({ Normal: Type.Integer(), Stone: Type.Integer() }),
    series: Type.Array(Type.Object({
      studyInstanceUid: Type.Optional(Type.String()),
      seriesInstanceUid: Type.String(),
      slices: Type.Integer(),
      conclusion: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')], { description: 'Stone if any slice of the series is Stone.' }),
      stoneSlices: Type.Array(Type.Object({
        index: Type.Integer(),
        sopInstanceUid: Type.Optional(Type.String()),
        probability: Type.Number()
      }), { description: 'The slices that made the series Stone, most probable first.' })
    }), { description: 'Series-level conclusions for the DICOM files, grouped by SeriesInstanceUID.' })
  })
}, { $id: 'BatchResponse', title: 'BatchResponse' })

export type BatchResponse = Static<typeof BatchResponseSchema>
