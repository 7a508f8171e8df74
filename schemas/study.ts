import { Type, type Static } from '@sinclair/typebox'
import { ModelRefSchema } from './model.js'
import { onlyParameters } from './query.js'
import { refTo } from './ref.js'

const DICOM_UID = '^[0-9]+(\\.[0-9]+)*$'

/**
 * The most series one study result lists: the first to arrive. A CT study has a few dozen; its rows are bounded
 * (MAX_STUDY_ROWS of each kind) but not how many series they name, and each series costs the event loop and the answer
 * its own entry and, in the FHIR form, its own Observation and sentence. 20,000 refused instances each naming a series
 * of its own (20 STOW-RS requests of 0.6 MB) made GET /studies/{uid} 9.3 MB of JSON that held the event loop 1.5 s,
 * and 35 MB as FHIR, 3 s: a few reads of it at once shed every other request under memory pressure.
 */
export const MAX_STUDY_SERIES = 1_000

const conclusionValue = (description: string) => Type.Union([Type.Literal('Stone'), Type.Literal('Normal'), Type.Literal('Undetermined')], { description })

export const StudyParamsSchema = Type.Object({
  studyInstanceUid: Type.String({ pattern: DICOM_UID, maxLength: 64, description: 'StudyInstanceUID (0020,000D).' })
})

export const StudyQuerySchema = onlyParameters({
  mine: Type.Optional(Type.Boolean({
    default: false,
    description: 'true: only the instances this caller sent, also for a caller with the `records:read-all` scope, which ' +
      'otherwise reads the study as its owner sent it (the caller that first had one of its instances classified, of those ' +
      'STUDY_OWNERS lists when it is set). Without authentication every HTTP caller is `anonymous`: true reads what they ' +
      'sent, never a DICOM sender\'s instances. The web page asks for its own uploads this way.'
  }))
})

export const SeriesRuleSchema = Type.Object({
  threshold: Type.Number({ description: 'P(Stone) at or above which a slice is positive: the model threshold.' }),
  minAdjacentSlices: Type.Integer({ minimum: 1, description: 'k: adjacent positive slices that make the series Stone (SERIES_MIN_ADJACENT_SLICES, capped at the slice count).' }),
  gapFactor: Type.Number({ description: 'Two slices further apart than gapFactor x the median spacing are not adjacent (a slice is missing).' })
}, { $id: 'SeriesRule', title: 'SeriesRule', description: 'Stone when at least k adjacent slices have P(Stone) >= threshold (docs/hospital.md, "Study results").' })

export const PositiveRangeSchema = Type.Object({
  first: Type.Integer({ minimum: 0, description: 'Index of the first slice of the run in `slices` (0-based).' }),
  last: Type.Integer({ minimum: 0, description: 'Index of the last slice of the run in `slices` (inclusive).' }),
  slices: Type.Integer({ minimum: 1 }),
  fromPosition: Type.Optional(Type.Number({ description: 'Slice position (mm) of the first slice.' })),
  toPosition: Type.Optional(Type.Number({ description: 'Slice position (mm) of the last slice.' })),
  fromInstanceNumber: Type.Optional(Type.Integer()),
  toInstanceNumber: Type.Optional(Type.Integer()),
  maxProbability: Type.Number({ minimum: 0, maximum: 1 })
}, { $id: 'PositiveRange', title: 'PositiveRange', description: 'A run of adjacent positive slices long enough to count.' })

export const StudySliceSchema = Type.Object({
  predictionId: Type.String({ format: 'uuid', description: 'GET /predictions/{id} gives the full answer for this slice.' }),
  sopInstanceUid: Type.Optional(Type.String()),
  instanceNumber: Type.Optional(Type.Integer({ description: 'The instance\'s InstanceNumber; absent on the frames of a multi-frame object.' })),
  frame: Type.Optional(Type.Integer({ minimum: 1, description: 'Of a multi-frame object (its frames are slices of the series): the frame, 1-based.' })),
  slicePosition: Type.Optional(Type.Number({ description: 'mm along the slice normal.' })),
  probability: Type.Number({ minimum: 0, maximum: 1, description: 'P(Stone).' }),
  prediction: Type.Union([Type.Literal('Normal'), Type.Literal('Stone')], { description: 'The per-slice decision.' })
}, { $id: 'StudySlice', title: 'StudySlice' })

export const FailedInstanceSchema = Type.Object({
  sopInstanceUid: Type.Optional(Type.String()),
  code: Type.String({ description: 'The error code the instance was refused with (e.g. UNSUPPORTED_MODALITY).' }),
  receivedAt: Type.String({ format: 'date-time' })
}, { $id: 'FailedInstance', title: 'FailedInstance' })

export const SeriesResultSchema = Type.Object({
  seriesInstanceUid: Type.String(),
  instances: Type.Object({
    received: Type.Integer({ minimum: 0, description: 'Distinct SOP instances received (classified + failed).' }),
    classified: Type.Integer({ minimum: 0 }),
    failed: Type.Integer({ minimum: 0 })
  }),
  final: Type.Boolean({ description: 'No instance arrived for SERIES_IDLE_SECONDS: the conclusion will not change unless the series is sent again.' }),
  lastReceivedAt: Type.String({ format: 'date-time' }),
  finalAt: Type.String({ format: 'date-time', description: 'When the series is (or was) final if nothing more arrives: lastReceivedAt + SERIES_IDLE_SECONDS.' }),
  conclusion: conclusionValue('Stone, Normal, or Undetermined when no instance was classified.'),
  positiveRanges: Type.Array(refTo(PositiveRangeSchema), { description: 'The runs that make the series Stone, in slice order.' }),
  isolatedPositiveSlices: Type.Integer({ minimum: 0, description: 'Positive slices in runs shorter than k: shown, not counted.' }),
  maxProbability: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Highest P(Stone) of the series.' })),
  maxProbabilityIndex: Type.Optional(Type.Integer({ minimum: 0, description: 'Index in `slices` of the slice with the highest P(Stone).' })),
  rule: refTo(SeriesRuleSchema),
  model: Type.Optional(refTo(ModelRefSchema)),
  slices: Type.Array(refTo(StudySliceSchema), { description: 'Classified slices (each instance, each frame of a multi-frame object) ordered by slice position, then InstanceNumber.' }),
  failures: Type.Array(refTo(FailedInstanceSchema), { description: 'Refused instances, in the order received.' })
}, { $id: 'SeriesResult', title: 'SeriesResult' })

export const StudyResultSchema = Type.Object({
  studyInstanceUid: Type.String(),
  verdict: conclusionValue('Stone if any series is Stone; Normal if any series is Normal and none Stone; else Undetermined.'),
  final: Type.Boolean({ description: 'Every series is final.' }),
  lastReceivedAt: Type.String({ format: 'date-time' }),
  series: Type.Array(refTo(SeriesResultSchema), { description: `In the order their first instance arrived; at most the first ${MAX_STUDY_SERIES}.` }),
  seriesLeftOut: Type.Optional(Type.Integer({ minimum: 1, description: `Series of this study past the first ${MAX_STUDY_SERIES} (a CT study has a few dozen): not listed, and not in the verdict. Absent when none.` })),
  disclaimer: Type.String()
}, { $id: 'StudyResult', title: 'StudyResult', description: 'Results of the CT instances received for one study (C-STORE, STOW-RS, /predict, /predict/batch).' })

export type SeriesRuleReply = Static<typeof SeriesRuleSchema>
export type SeriesResult = Static<typeof SeriesResultSchema>
export type StudyResult = Static<typeof StudyResultSchema>

export const studySchemas = [SeriesRuleSchema, PositiveRangeSchema, StudySliceSchema, FailedInstanceSchema, SeriesResultSchema, StudyResultSchema]
