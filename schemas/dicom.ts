import { Type, type Static } from '@sinclair/typebox'

const uid = (description: string) => Type.Optional(Type.String({ description }))

/** Echoed for DICOM uploads so a result can be matched back in PACS; patient data is never read or returned. */
export const DicomIdentifiersSchema = Type.Object({
  studyInstanceUid: uid('StudyInstanceUID (0020,000D)'),
  seriesInstanceUid: uid('SeriesInstanceUID (0020,000E)'),
  sopInstanceUid: uid('SOPInstanceUID (0008,0018)')
}, { $id: 'DicomIdentifiers', title: 'DicomIdentifiers', description: 'Present only for DICOM uploads.' })

export type DicomIdentifiersReply = Static<typeof DicomIdentifiersSchema>
