/**
 * DICOM Upper Layer PDUs (PS3.8 section 9.3): the subset a storage SCP needs. A-ASSOCIATE-RQ is parsed; A-ASSOCIATE-AC,
 * A-ASSOCIATE-RJ, P-DATA-TF, A-RELEASE-RP and A-ABORT are built; P-DATA-TF is split into its PDVs. Big-endian
 * lengths throughout (the upper layer is big-endian whatever the transfer syntax of the data).
 */

export const PDU = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pData: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07
} as const

export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1'
/** Our implementation identity in A-ASSOCIATE-AC and in the File Meta Information of what we receive. */
export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1486.1'
export const IMPLEMENTATION_VERSION = 'KIDNEYSTONE_1'

export class PduError extends Error {}

export interface ProposedContext {
  id: number
  abstractSyntax: string
  transferSyntaxes: string[]
}

export interface AssociateRequest {
  protocolVersion: number
  calledAe: string
  callingAe: string
  contexts: ProposedContext[]
  /** The largest P-DATA-TF PDU the requestor accepts; 0: no limit. */
  maxPduLength: number
}

/**
 * Spaces pad an AE title (PS3.8 9.3.2); some peers pad with NULs, as UIDs are padded, and mean the same title. What is
 * left may still be no AE title (isAeTitle): the association says so.
 */
const ae = (bytes: Buffer): string => bytes.toString('latin1').replace(/^[\0 ]+|[\0 ]+$/g, '')

/** PS3.5 6.2 (AE): not only spaces, and characters of the default repertoire other than backslash; no control characters. */
export function isAeTitle (title: string): boolean {
  return /^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(title)
}
const uid = (bytes: Buffer): string => bytes.toString('latin1').replace(/[\0 ]+$/, '')

/** The items of a PDU's variable part (or of a sub-item list): type and value, in order. */
function items (bytes: Buffer): Array<{ type: number, value: Buffer }> {
  const found: Array<{ type: number, value: Buffer }> = []
  for (let offset = 0; offset < bytes.length;) {
    if (offset + 4 > bytes.length) throw new PduError('truncated item header')
    const length = bytes.readUInt16BE(offset + 2)
    if (offset + 4 + length > bytes.length) throw new PduError('item longer than its PDU')
    found.push({ type: bytes[offset], value: bytes.subarray(offset + 4, offset + 4 + length) })
    offset += 4 + length
  }
  return found
}

/** `body`: the PDU after its 6-byte header. */
export function parseAssociateRequest (body: Buffer): AssociateRequest {
  if (body.length < 68) throw new PduError('A-ASSOCIATE-RQ shorter than its fixed fields')
  const request: AssociateRequest = {
    protocolVersion: body.readUInt16BE(0),
    calledAe: ae(body.subarray(4, 20)),
    callingAe: ae(body.subarray(20, 36)),
    contexts: [],
    maxPduLength: 0
  }
  for (const item of items(body.subarray(68))) {
    if (item.type === 0x20) {
      if (item.value.length < 4) throw new PduError('presentation context item too short')
      const sub = items(item.value.subarray(4))
      request.contexts.push({
        id: item.value[0],
        abstractSyntax: uid(sub.find((s) => s.type === 0x30)?.value ?? Buffer.alloc(0)),
        transferSyntaxes: sub.filter((s) => s.type === 0x40).map((s) => uid(s.value))
      })
    } else if (item.type === 0x50) {
      const maxLength = items(item.value).find((s) => s.type === 0x51)
      if (maxLength !== undefined && maxLength.value.length === 4) request.maxPduLength = maxLength.value.readUInt32BE(0)
    }
  }
  return request
}

function pdu (type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6)
  header[0] = type
  header.writeUInt32BE(body.length, 2)
  return Buffer.concat([header, body])
}

function item (type: number, value: Buffer): Buffer {
  const header = Buffer.alloc(4)
  header[0] = type
  header.writeUInt16BE(value.length, 2)
  return Buffer.concat([header, value])
}

const text = (value: string): Buffer => Buffer.from(value, 'latin1')
const aeField = (value: string): Buffer => Buffer.from(value.padEnd(16, ' ').slice(0, 16), 'latin1')

export interface ContextAnswer {
  id: number
  /** 0 acceptance, 3 abstract syntax not supported, 4 transfer syntaxes not supported (PS3.8 9.3.3.2). */
  result: 0 | 3 | 4
  transferSyntax?: string
}

export function associateAccept (request: AssociateRequest, answers: ContextAnswer[], maxPduLength: number): Buffer {
  const fixed = Buffer.alloc(68)
  fixed.writeUInt16BE(1, 0)
  aeField(request.calledAe).copy(fixed, 4)
  aeField(request.callingAe).copy(fixed, 20)
  const maxLength = Buffer.alloc(4)
  maxLength.writeUInt32BE(maxPduLength)
  return pdu(PDU.associateAc, Buffer.concat([
    fixed,
    item(0x10, text(APPLICATION_CONTEXT)),
    ...answers.map((answer) => item(0x21, Buffer.concat([
      Buffer.from([answer.id, 0, answer.result, 0]),
      // A rejected context still carries one transfer syntax sub-item, whose value is not significant.
      item(0x40, text(answer.transferSyntax ?? '1.2.840.10008.1.2'))
    ]))),
    item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, text(IMPLEMENTATION_CLASS_UID)), item(0x55, text(IMPLEMENTATION_VERSION))]))
  ]))
}

/** PS3.8 9.3.4: result 1 permanent / 2 transient; source 1 service user, 2 ACSE provider, 3 presentation provider. */
export const REJECT = {
  calledAeNotRecognized: { result: 1, source: 1, reason: 7 },
  callingAeNotRecognized: { result: 1, source: 1, reason: 3 },
  protocolVersionNotSupported: { result: 1, source: 2, reason: 2 },
  localLimitExceeded: { result: 2, source: 3, reason: 2 },
  noReasonGiven: { result: 1, source: 1, reason: 1 }
} as const

export function associateReject ({ result, source, reason }: { result: number, source: number, reason: number }): Buffer {
  return pdu(PDU.associateRj, Buffer.from([0, result, source, reason]))
}

export function releaseResponse (): Buffer {
  return pdu(PDU.releaseRp, Buffer.alloc(4))
}

/** PS3.8 9.3.8: source 0 service user, 2 service provider; reason 0 not specified, 2 unexpected PDU, 6 invalid parameter. */
export function abort (source: 0 | 2 = 2, reason = 0): Buffer {
  return pdu(PDU.abort, Buffer.from([0, 0, source, reason]))
}

export interface Pdv {
  contextId: number
  command: boolean
  last: boolean
  value: Buffer
}

export function parsePData (body: Buffer): Pdv[] {
  const pdvs: Pdv[] = []
  for (let offset = 0; offset < body.length;) {
    if (offset + 6 > body.length) throw new PduError('truncated PDV header')
    const length = body.readUInt32BE(offset)
    if (length < 2 || offset + 4 + length > body.length) throw new PduError('PDV longer than its PDU')
    const header = body[offset + 5]
    pdvs.push({ contextId: body[offset + 4], command: (header & 1) === 1, last: (header & 2) === 2, value: body.subarray(offset + 6, offset + 4 + length) })
    offset += 4 + length
  }
  return pdvs
}

/** One message as P-DATA-TF PDUs no larger than `maxPduLength` (0: no limit). */
export function pData (contextId: number, command: boolean, value: Buffer, maxPduLength: number): Buffer[] {
  const room = maxPduLength === 0 ? value.length : Math.max(1, maxPduLength - 6)
  const out: Buffer[] = []
  for (let offset = 0; offset < value.length || out.length === 0; offset += room) {
    const fragment = value.subarray(offset, offset + room)
    const last = offset + room >= value.length
    const header = Buffer.alloc(6)
    header.writeUInt32BE(fragment.length + 2, 0)
    header[4] = contextId
    header[5] = (command ? 1 : 0) | (last ? 2 : 0)
    out.push(pdu(PDU.pData, Buffer.concat([header, fragment])))
  }
  return out
}
