/**
 * DIMSE command sets (PS3.7 section 9 and E): group 0000 elements, always implicit VR little endian. Only what
 * C-ECHO and C-STORE need is read and written.
 */

export const COMMAND = {
  cStoreRq: 0x0001,
  cStoreRsp: 0x8001,
  cEchoRq: 0x0030,
  cEchoRsp: 0x8030
} as const

/**
 * The DIMSE requests by CommandField (PS3.7 E.1-1 and E.2-1), named as the `command` label of
 * kidney_dicom_commands_refused_total: a field that is none of them is `other`, so the label has these values only.
 */
const REQUESTS: ReadonlyMap<number, string> = new Map([
  [0x0001, 'C-STORE'], [0x0010, 'C-GET'], [0x0020, 'C-FIND'], [0x0021, 'C-MOVE'], [0x0030, 'C-ECHO'], [0x0fff, 'C-CANCEL'],
  [0x0100, 'N-EVENT-REPORT'], [0x0110, 'N-GET'], [0x0120, 'N-SET'], [0x0130, 'N-ACTION'], [0x0140, 'N-CREATE'], [0x0150, 'N-DELETE']
])

export function requestName (field: number): string {
  return REQUESTS.get(field) ?? 'other'
}

/** CommandDataSetType (0000,0800): this value means no data set follows. */
export const NO_DATA_SET = 0x0101

/** DIMSE statuses this node answers with (PS3.4 B.2.3 and C.4.2.1.4, PS3.7 C). */
export const STATUS = {
  success: 0x0000,
  /** Refused: SOP Class not supported. */
  sopClassNotSupported: 0x0122,
  /** Failure: processing failure. */
  processingFailure: 0x0110,
  /** Unrecognized operation. */
  unrecognizedOperation: 0x0211,
  /** Refused: out of resources (transient: the sender may try again later). */
  outOfResources: 0xa700,
  /** Error: cannot understand. */
  cannotUnderstand: 0xc000,
  /** Error: cannot understand, the transfer syntax in particular (PS3.18 Table I.2-2: Referenced Transfer Syntax not supported). */
  transferSyntaxNotSupported: 0xc122
} as const

export interface Command {
  field: number
  messageId: number
  affectedSopClassUid?: string
  affectedSopInstanceUid?: string
  hasDataSet: boolean
}

const TAG = {
  affectedSopClassUid: 0x00000002,
  commandField: 0x00000100,
  messageId: 0x00000110,
  messageIdBeingRespondedTo: 0x00000120,
  dataSetType: 0x00000800,
  status: 0x00000900,
  errorComment: 0x00000902,
  affectedSopInstanceUid: 0x00001000
} as const

export class CommandError extends Error {}

export function parseCommand (bytes: Buffer): Command {
  const values = new Map<number, Buffer>()
  for (let offset = 0; offset < bytes.length;) {
    if (offset + 8 > bytes.length) throw new CommandError('truncated command element')
    const tag = (bytes.readUInt16LE(offset) << 16 | bytes.readUInt16LE(offset + 2)) >>> 0
    const length = bytes.readUInt32LE(offset + 4)
    if (offset + 8 + length > bytes.length) throw new CommandError('command element longer than the command')
    values.set(tag, bytes.subarray(offset + 8, offset + 8 + length))
    offset += 8 + length
  }
  const us = (tag: number): number | undefined => values.get(tag)?.length === 2 ? values.get(tag)?.readUInt16LE(0) : undefined
  const ui = (tag: number): string | undefined => values.get(tag)?.toString('latin1').replace(/[\0 ]+$/, '')
  const field = us(TAG.commandField)
  const messageId = us(TAG.messageId)
  if (field === undefined || messageId === undefined) throw new CommandError('a command needs CommandField and MessageID')
  return {
    field,
    messageId,
    affectedSopClassUid: ui(TAG.affectedSopClassUid),
    affectedSopInstanceUid: ui(TAG.affectedSopInstanceUid),
    hasDataSet: us(TAG.dataSetType) !== NO_DATA_SET
  }
}

function element (tag: number, value: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt16LE(tag >>> 16, 0)
  head.writeUInt16LE(tag & 0xffff, 2)
  head.writeUInt32LE(value.length, 4)
  return Buffer.concat([head, value])
}

const u16 = (value: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b }
const padded = (value: string, pad: string): Buffer => Buffer.from(value.length % 2 === 0 ? value : value + pad, 'latin1')

/**
 * The response to `request`: C-STORE-RSP or C-ECHO-RSP (or the request's field with the response bit for an
 * operation this node does not perform). `comment`: ErrorComment (LO, at most 64 characters, cut here).
 */
export function responseCommand (request: Command, status: number, comment?: string): Buffer {
  const elements = [
    ...(request.affectedSopClassUid === undefined ? [] : [element(TAG.affectedSopClassUid, padded(request.affectedSopClassUid, '\0'))]),
    element(TAG.commandField, u16(request.field | 0x8000)),
    element(TAG.messageIdBeingRespondedTo, u16(request.messageId)),
    element(TAG.dataSetType, u16(NO_DATA_SET)),
    element(TAG.status, u16(status)),
    ...(comment === undefined ? [] : [element(TAG.errorComment, padded(comment.replace(/[^ -~]/g, ' ').slice(0, 64), ' '))]),
    ...(request.affectedSopInstanceUid === undefined ? [] : [element(TAG.affectedSopInstanceUid, padded(request.affectedSopInstanceUid, '\0'))])
  ]
  const body = Buffer.concat(elements)
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(body.length)
  return Buffer.concat([element(0x00000000, groupLength), body])
}
