import type { NodeEventDetails } from './events.js'

/** What the DICOM node asks of the service that hosts it: its settings, where instances go, who is admitted. */
export interface StoreRequest {
  callingAe: string
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  /** The data set as a Part 10 file. */
  bytes: Buffer
}

export interface StoreResult {
  status: number
  comment?: string
}

/** A limit on associations served at once, named in the event of the association it refused. */
export interface AssociationLimit {
  name: 'total' | 'per calling AE'
  max: number
  /** Slots of the `max` held by associations whose peer is gone while their instance is classified. */
  abandoned: number
}

export interface AssociationPolicy {
  aeTitle: string
  allowedAes: readonly string[]
  maxPduBytes: number
  maxInstanceBytes: number
  idleTimeoutMs: number
  /** Instance bytes per second an association must send, judged over each idleTimeoutMs (0: not judged). */
  minRateBytesPerS: number
  acceptsTransferSyntax: (uid: string) => boolean
  store: (request: StoreRequest) => Promise<StoreResult>
  /** The limit one more association from callingAe would exceed, or undefined when it fits (checked at its A-ASSOCIATE-RQ). */
  admit: (callingAe: string) => AssociationLimit | undefined
  event: (name: string, details: NodeEventDetails) => void
}
