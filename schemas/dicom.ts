import { Type, type Static } from '@sinclair/typebox'

const uid = (description: string) => Type.Optional(Type.String({ description }))

/** Echoed for DICOM uploads so a result can be matched back in PACS; patient data is never read or returned. */
export const DicomIdentifiersSchema = Type.Object({
  studyInstanceUid: uid('StudyInstanceUID (0020,000D)'),
  seriesInstanceUid: uid('SeriesInstanceUID (0020,000E)'),
  sopInstanceUid: uid('SOPInstanceUID (0008,0018)'),
  instanceNumber: Type.Optional(Type.Integer({ description: 'InstanceNumber (0020,0013).' })),
  slicePosition: Type.Optional(Type.Number({
    description: 'Position of the slice along its normal, mm: ImagePositionPatient projected on the normal of ImageOrientationPatient ' +
      '(SliceLocation when those are absent). Orders a series\' results by slice.'
  }))
}, { $id: 'DicomIdentifiers', title: 'DicomIdentifiers', description: 'Present only for DICOM uploads: where the instance sits in PACS and in its series.' })

export type DicomIdentifiersReply = Static<typeof DicomIdentifiersSchema>
