import { STATUS } from './dimse.js'

/** A refusal as the service words it: the typed error's code, HTTP status and message. */
export interface Refusal {
  code: string
  statusCode: number
  message: string
}

/**
 * The DIMSE status of a refused instance, also the STOW-RS FailureReason (0008,1197) (PS3.4 B.2.3, PS3.18 I.2):
 * - 0xA700 out of resources: the service is busy or cannot record (503): the sender should retry later;
 * - 0x0122 SOP class not supported: not a CT image SOP class;
 * - 0xC122 transfer syntax not supported: a syntax no decoder here reads (PS3.18 Table I.2-2 has this code, and asks
 *   for the most appropriate one). Over STOW-RS only in practice: the DICOM node refuses such a context at association;
 * - 0xC000 cannot understand: the instance is refused as it is (4xx: modality, corrupt, too large, undecodable);
 * - 0x0110 processing failure: our fault (5xx).
 */
export function failureStatus (refusal: Refusal): number {
  if (refusal.statusCode === 503) return STATUS.outOfResources
  if (refusal.code === 'UNSUPPORTED_SOP_CLASS') return STATUS.sopClassNotSupported
  if (refusal.code === 'UNSUPPORTED_TRANSFER_SYNTAX') return STATUS.transferSyntaxNotSupported
  if (refusal.statusCode >= 400 && refusal.statusCode < 500) return STATUS.cannotUnderstand
  return STATUS.processingFailure
}

/** ErrorComment (LO, 64 characters at most): the code first, so a PACS log shows it even when cut. */
export function errorComment (refusal: Refusal): string {
  return `${refusal.code}: ${refusal.message}`.slice(0, 64)
}
