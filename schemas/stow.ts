import { Type } from '@sinclair/typebox'

const attribute = (vr: string, value: ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>, description: string) =>
  Type.Object({ vr: Type.Literal(vr), Value: Type.Array(value, { minItems: 1, maxItems: 1 }) }, { description })

const SopReference = Type.Object({
  '00081150': attribute('UI', Type.String(), 'ReferencedSOPClassUID'),
  '00081155': attribute('UI', Type.String(), 'ReferencedSOPInstanceUID'),
  '00081197': Type.Optional(attribute('US', Type.Integer(), 'FailureReason: 0xA700 (42752) out of resources, retry later; ' +
    '0x0122 (290) SOP class not supported; 0xC000 (49152) cannot understand (refused as it is); 0x0110 (272) processing failure.'))
})

/** The STOW-RS answer (PS3.18 10.5.3): DICOM JSON (PS3.18 F.2) with the stored and the failed instances. */
export const StowResponseSchema = Type.Object({
  '00081199': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'ReferencedSOPSequence: the instances stored and classified.' })),
  '00081198': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'FailedSOPSequence: the instances refused, each with its FailureReason.' }))
}, { $id: 'StowResponse', title: 'StowResponse', additionalProperties: false })
