import { Type, type TInteger, type TString } from '@sinclair/typebox'

/**
 * A DICOM JSON attribute of one value (PS3.18 F.2). `mayBeEmpty`: a UID the instance may not have given (it could
 * not be read), then present without a Value (F.2.5).
 */
const attribute = (vr: string, value: TString | TInteger, description: string, { mayBeEmpty = false } = {}) => {
  const values = Type.Array(value, { minItems: 1, maxItems: 1 })
  return Type.Object({ vr: Type.Literal(vr), Value: mayBeEmpty ? Type.Optional(values) : values }, { description })
}

const uid = (description: string) =>
  attribute('UI', Type.String(), `${description}; no Value when it could not be read from the instance`, { mayBeEmpty: true })

/**
 * Retrieve URL (0008,1190): Type 2 in the Store Instances Response Module (PS3.18 Table I.1-1), at the top and in each
 * ReferencedSOPSequence item, so present; empty, since this service stores results, not instances to retrieve.
 */
const retrieveUrl = (what: string) => Type.Object({ vr: Type.Literal('UR') }, { description: `RetrieveURL of ${what}: always empty (no Value), this service offers no retrieve (WADO-RS).` })

const SopReference = Type.Object({
  '00081150': uid('ReferencedSOPClassUID'),
  '00081155': uid('ReferencedSOPInstanceUID'),
  '00081190': Type.Optional(retrieveUrl('the instance (ReferencedSOPSequence items only)')),
  '00081197': Type.Optional(attribute('US', Type.Integer(), 'FailureReason: 0xA700 (42752) out of resources, retry later; ' +
    '0x0122 (290) SOP class not supported; 0xC000 (49152) cannot understand (refused as it is); 0xC122 (49442) transfer syntax not supported (send it in another); 0x0110 (272) processing failure.'))
})

/** The STOW-RS answer (PS3.18 10.5.3): DICOM JSON (PS3.18 F.2) with the stored and the failed instances. */
export const StowResponseSchema = Type.Object({
  '00081190': retrieveUrl('the study'),
  '00081199': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'ReferencedSOPSequence: the instances stored and classified.' })),
  '00081198': Type.Optional(Type.Object({ vr: Type.Literal('SQ'), Value: Type.Array(SopReference) }, { description: 'FailedSOPSequence: the instances refused, each with its FailureReason.' }))
}, { $id: 'StowResponse', title: 'StowResponse', additionalProperties: false })
