import { execFile } from 'node:child_process'
import { connect, type Socket } from 'node:net'

/** dcmtk's echoscu, storescu, findscu, getscu, movescu (Debian package dcmtk, installed by `npm test`'s pretest): exit code and output, never throws. */
export async function dcmtk (tool: 'echoscu' | 'storescu' | 'findscu' | 'getscu' | 'movescu', args: string[]): Promise<{ code: number, output: string }> {
  return await new Promise((resolve) => {
    execFile(tool, args, { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, output: `${stdout}${stderr}` })
    })
  })
}

/**
 * A raw A-ASSOCIATE-RQ proposing Verification in `transferSyntax` (implicit VR little endian unless told), written by
 * hand: for the tests that need a peer dcmtk will not be.
 */
export function associateRequest (calledAe: string, callingAe: string, transferSyntax = '1.2.840.10008.1.2'): Buffer {
  const item = (type: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(4)
    head[0] = type
    head.writeUInt16BE(value.length, 2)
    return Buffer.concat([head, value])
  }
  const fixed = Buffer.alloc(68)
  fixed.writeUInt16BE(1, 0)
  fixed.write(calledAe.padEnd(16), 4, 'latin1')
  fixed.write(callingAe.padEnd(16), 20, 'latin1')
  const maxLength = Buffer.alloc(4)
  maxLength.writeUInt32BE(16384)
  const body = Buffer.concat([
    fixed,
    item(0x10, Buffer.from('1.2.840.10008.3.1.1.1')),
    item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), item(0x30, Buffer.from('1.2.840.10008.1.1')), item(0x40, Buffer.from(transferSyntax))])),
    item(0x50, item(0x51, maxLength))
  ])
  const head = Buffer.alloc(6)
  head[0] = 0x01
  head.writeUInt32BE(body.length, 2)
  return Buffer.concat([head, body])
}

/** A connection to the node that collects what it answers and resolves `closed` when the node closes it. */
export async function rawPeer (port: number): Promise<{ socket: Socket, received: () => Buffer, closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1')
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  return { socket, received: () => Buffer.concat(chunks), closed }
}

/** A raw peer that has sent its A-ASSOCIATE-RQ, once the node answered (its first PDU type: 0x02 accepted, 0x03 rejected); kept open. */
export async function associatedPeer (port: number, calledAe: string, callingAe: string, transferSyntax?: string): Promise<Awaited<ReturnType<typeof rawPeer>> & { answer: number }> {
  const peer = await rawPeer(port)
  peer.socket.write(associateRequest(calledAe, callingAe, transferSyntax))
  for (let attempt = 0; attempt < 100 && peer.received().length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  return { ...peer, answer: peer.received()[0] }
}

/**
 * One P-DATA-TF PDU of one PDV (context 1 unless told): a command fragment, or a data-set fragment, `last` or not.
 * Written by hand, as a peer that sends what dcmtk never would (PDUs of a few bytes, just often enough) needs.
 */
export function pDataPdu (value: Buffer, options: { command: boolean, last: boolean, context?: number }): Buffer {
  const pdu = Buffer.alloc(12)
  pdu[0] = 0x04
  pdu.writeUInt32BE(6 + value.length, 2)
  pdu.writeUInt32BE(2 + value.length, 6)
  pdu[10] = options.context ?? 1
  pdu[11] = (options.command ? 1 : 0) | (options.last ? 2 : 0)
  return Buffer.concat([pdu, value])
}

/**
 * A DIMSE command set (implicit VR little endian): C-ECHO-RQ (0x0030), C-STORE-RQ (0x0001, with a data set), or any
 * other CommandField, with a data set unless `dataSet` is false; for the Verification SOP class, or a CT Image for a
 * C-STORE-RQ, unless `sopClassUid` names another; with an AffectedSOPInstanceUID when `sopInstanceUid` gives one.
 */
export function commandSet (field: number, messageId: number, options: { dataSet?: boolean, sopClassUid?: string, sopInstanceUid?: string } = {}): Buffer {
  const element = (tag: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(8)
    head.writeUInt16LE(0, 0)
    head.writeUInt16LE(tag, 2)
    head.writeUInt32LE(value.length, 4)
    return Buffer.concat([head, value])
  }
  const u16 = (value: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b }
  const uid = (value: string): Buffer => Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1')
  const sopClass = uid(options.sopClassUid ?? (field === 0x0001 ? '1.2.840.10008.5.1.4.1.1.2' : '1.2.840.10008.1.1'))
  const dataSet = options.dataSet ?? field !== 0x0030
  const body = Buffer.concat([element(0x0002, sopClass), element(0x0100, u16(field)), element(0x0110, u16(messageId)),
    element(0x0800, u16(dataSet ? 0x0000 : 0x0101)),
    ...(options.sopInstanceUid === undefined ? [] : [element(0x1000, uid(options.sopInstanceUid))])])
  const length = Buffer.alloc(4)
  length.writeUInt32LE(body.length)
  return Buffer.concat([element(0x0000, length), body])
}

/**
 * The DIMSE responses in what a raw peer received after its A-ASSOCIATE-AC: each P-DATA-TF command's CommandField and
 * Status (one PDV a PDU, as the node sends a response command).
 */
export function dimseResponses (received: Buffer): Array<{ field: number, status: number }> {
  const responses: Array<{ field: number, status: number }> = []
  for (let offset = 0; offset + 6 <= received.length; offset += 6 + received.readUInt32BE(offset + 2)) {
    if (received[offset] !== 0x04) continue
    const command = received.subarray(offset + 12, offset + 6 + received.readUInt32BE(offset + 2))
    const values = new Map<number, number>()
    for (let at = 0; at + 8 <= command.length; at += 8 + command.readUInt32LE(at + 4)) {
      if (command.readUInt32LE(at + 4) === 2) values.set(command.readUInt16LE(at + 2), command.readUInt16LE(at + 8))
    }
    responses.push({ field: values.get(0x0100) ?? -1, status: values.get(0x0900) ?? -1 })
  }
  return responses
}
