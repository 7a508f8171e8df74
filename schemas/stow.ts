import { Type } from '@sinclair/typebox'

const attribute = (vr: string, value: ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>, description: string) =>
  Type.Object({ vr: Type.Literal(vr), Value: Type.Array(value, { minItems: 1, maxItems: 1 }) }, { description })

/** A UID the instance may not have given (it could not be read): then present without a Value (PS3.18 F.2.5). */
const uid = (description: string) =>
  Type.Object({ vr: Type.Literal('UI'), Value: Type.Optional(Type.Array(Type.String(), { minItems: 1, maxItems: 1 })) },
    { description: `${description}; no Value when it could not be read from the instance` })

const SopReference = Type.Object({
  '00081150': uid('ReferencedSOPClassUID'),
  '00081155': uid('ReferencedSOPInstanceUID'),
  '00081197': Type.Optional(attribute('US', Type.Integer(), 'FailureReason: 0xA700 (42752) out of resources, retry later; ' +
    '0x0122 (290) SOP class not supported; 0xC000 (49152) cannot understand (refused as it is); 0x0110 (272) processing failure.'))
})

/** The STOW-RS answer (PS3.18 10.5.3): DICOM JSON (PS3.18 F.2) with the stored and the failed instances. */
export const StowResponseSchema = Type.Object({
  '00081199': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'ReferencedSOPSequence: the instances stored and classified.' })),
  '00081198': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'FailedSOPSequence: the instances refused, each with its FailureReason.' }))
}, { $id: 'StowResponse', title: 'StowResponse', additionalProperties: false })
