import { Type, type Static } from '@sinclair/typebox'

const pixels = (description: string) => Type.Integer({ minimum: 0, description })

export const FindingSchema = Type.Object({
  box: Type.Object({
    x: pixels('Left edge: column of the box\'s first pixel.'),
    y: pixels('Top edge: row of the box\'s first pixel.'),
    width: Type.Integer({ minimum: 1, description: 'Columns the box covers.' }),
    height: Type.Integer({ minimum: 1, description: 'Rows the box covers.' })
  }, { description: 'In pixels of the uploaded image as it is displayed (after EXIF orientation; DICOM: Columns x Rows), origin top-left.' }),
  score: Type.Number({
    minimum: 0,
    maximum: 1,
    description: 'sigmoid(peak / temperature) of the region\'s strongest activation-map cell: the P(Stone) the model would give ' +
      'if this region were its only evidence. The top finding holds the map\'s peak.'
  })
}, {
  $id: 'Finding',
  title: 'Finding',
  description: 'A region of the image where the model found the evidence for its Stone answer: where it looked, not the ' +
    'outline of a stone (docs/findings.md).'
})

export type FindingReply = Static<typeof FindingSchema>
