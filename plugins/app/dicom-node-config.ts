import { isAeTitle } from '../../dicom-node/pdu.js'
import type { Env } from './env-schema.js'

export interface DicomNodeSettings {
  /** undefined: the DICOM node is off. 0: any free port (tests). */
  port?: number
  aeTitle: string
  /** Calling AE titles allowed to associate; empty: any. */
  allowedAes: string[]
  maxAssociations: number
  /** Associations served at once for one calling AE title; at most maxAssociations. */
  maxAssociationsPerAe: number
  maxPduBytes: number
  idleTimeoutMs: number
  /** Instance bytes per second an association must send, judged over each idleTimeoutMs; 0: not judged. */
  minRateBytesPerS: number
}

/**
 * The DICOM node's settings. Unset, DICOM_MAX_ASSOCIATIONS_PER_AE keeps two of DICOM_MAX_ASSOCIATIONS for other
 * senders (the per-AE limit is never below 1): a PACS pushing with many parallel associations, or a modality retrying
 * in a loop, cannot then refuse every other modality's push. When DICOM_ALLOWED_AES names one sender there is no other
 * to keep slots for, and it may use them all.
 */
export function dicomNodeFrom (e: Env): DicomNodeSettings {
  const allowedAes = e.DICOM_ALLOWED_AES.split(',').map((ae) => ae.trim()).filter((ae) => ae !== '')
  const maxAssociations = e.DICOM_MAX_ASSOCIATIONS
  return {
    port: e.DICOM_PORT,
    aeTitle: e.DICOM_AE_TITLE.trim(),
    allowedAes,
    maxAssociations,
    maxAssociationsPerAe: e.DICOM_MAX_ASSOCIATIONS_PER_AE ?? (allowedAes.length === 1 ? maxAssociations : Math.max(1, maxAssociations - 2)),
    maxPduBytes: e.DICOM_MAX_PDU_BYTES,
    idleTimeoutMs: e.DICOM_IDLE_TIMEOUT_S * 1000,
    minRateBytesPerS: e.DICOM_MIN_RATE_BYTES_S
  }
}

/**
 * Why the DICOM node's settings cannot work together, or undefined. Only the node reads them, so they are judged only
 * when it is on (DICOM_PORT set): a stale DICOM_ALLOWED_AES or per-AE limit where the node is off must not stop the
 * HTTP service. An AE title over 16 characters, with a backslash or only spaces matches no peer (the node compares
 * titles with padding stripped, dicom-node/pdu.ts), so every association would be refused.
 */
export function dicomNodeRefusal (e: Env): string | undefined {
  if (e.DICOM_PORT === undefined) return undefined
  if (e.DICOM_MAX_ASSOCIATIONS_PER_AE !== undefined && e.DICOM_MAX_ASSOCIATIONS_PER_AE > e.DICOM_MAX_ASSOCIATIONS) {
    return `Invalid environment variable DICOM_MAX_ASSOCIATIONS_PER_AE=${e.DICOM_MAX_ASSOCIATIONS_PER_AE}: must not exceed DICOM_MAX_ASSOCIATIONS (${e.DICOM_MAX_ASSOCIATIONS})`
  }
  const { aeTitle, allowedAes } = dicomNodeFrom(e)
  const [name, value] = isAeTitle(aeTitle) ? ['DICOM_ALLOWED_AES', allowedAes.find((title) => !isAeTitle(title))] : ['DICOM_AE_TITLE', aeTitle]
  if (value === undefined) return undefined
  return `Invalid environment variable ${name}: ${JSON.stringify(value)} is no AE title (1 to 16 characters, no backslash or control character, not only spaces), so no peer can call with it`
}
