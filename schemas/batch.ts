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
      slices: Type.Integer({ description: 'Slices classified: a multi-frame object counts each frame; a SOP instance sent twice counts once (the first file: a repeat with the same bytes shares its result, one with other bytes is 409 DUPLICATE_SOP_INSTANCE).' }),
      conclusion: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')], {
        description: 'The series rule of GET /studies (inference/series-conclusion.ts): Stone when at least SERIES_MIN_ADJACENT_SLICES ' +
          '(k, default 2; at most the slice count) adjacent slices have P(Stone) at or above the model threshold, else Normal. A lone ' +
          'positive slice among normal neighbours does not make the series Stone; it is still listed in stoneSlices.'
      }),
      stoneSlices: Type.Array(Type.Object({
        index: Type.Integer({ description: 'The file (its index in the request).' }),
        frame: Type.Optional(Type.Integer({ minimum: 1, description: 'The frame, for a multi-frame object (1-based).' })),
        sopInstanceUid: Type.Optional(Type.String()),
        probability: Type.Number()
      }), { description: 'Every positive slice (P(Stone) at or above the threshold), most probable first, whether or not it is in a run of k.' })
    }), { description: 'Series-level conclusions for the DICOM files, grouped by SeriesInstanceUID, concluded as GET /studies concludes a series.' })
  })
}, { $id: 'BatchResponse', title: 'BatchResponse' })

export type BatchResponse = Static<typeof BatchResponseSchema>
