import { execFile } from 'node:child_process'
import { connect, type Socket } from 'node:net'

/** dcmtk's echoscu / storescu (Debian package dcmtk, installed by `npm test`'s pretest): exit code and output, never throws. */
export async function dcmtk (tool: 'echoscu' | 'storescu', args: string[]): Promise<{ code: number, output: string }> {
  return await new Promise((resolve) => {
    execFile(tool, args, { timeout: 600_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, output: `${stdout}${stderr}` })
    })
  })
}

/** A raw A-ASSOCIATE-RQ proposing Verification, written by hand: for the tests that need a peer dcmtk will not be. */
export function associateRequest (calledAe: string, callingAe: string): Buffer {
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
    item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), item(0x30, Buffer.from('1.2.840.10008.1.1')), item(0x40, Buffer.from('1.2.840.10008.1.2'))])),
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
export async function associatedPeer (port: number, calledAe: string, callingAe: string): Promise<Awaited<ReturnType<typeof rawPeer>> & { answer: number }> {
  const peer = await rawPeer(port)
  peer.socket.write(associateRequest(calledAe, callingAe))
  for (let attempt = 0; attempt < 100 && peer.received().length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20))
  return { ...peer, answer: peer.received()[0] }
}

/**
 * One P-DATA-TF PDU of one PDV (context 1): a command fragment, or a data-set fragment, `last` or not. Written by hand,
 * as a peer that sends what dcmtk never would (PDUs of a few bytes, just often enough) needs.
 */
export function pDataPdu (value: Buffer, options: { command: boolean, last: boolean }): Buffer {
  const pdu = Buffer.alloc(12)
  pdu[0] = 0x04
  pdu.writeUInt32BE(6 + value.length, 2)
  pdu.writeUInt32BE(2 + value.length, 6)
  pdu[10] = 1
  pdu[11] = (options.command ? 1 : 0) | (options.last ? 2 : 0)
  return Buffer.concat([pdu, value])
}

/**
 * A DIMSE command set (implicit VR little endian): C-ECHO-RQ (0x0030) or C-STORE-RQ (0x0001, with a data set), the latter
 * of a CT Image unless `store` names another SOP class, with an AffectedSOPInstanceUID when `store` gives one.
 */
export function commandSet (field: 0x0030 | 0x0001, messageId: number, store: { sopClassUid?: string, sopInstanceUid?: string } = {}): Buffer {
  const element = (tag: number, value: Buffer): Buffer => {
    const head = Buffer.alloc(8)
    head.writeUInt16LE(0, 0)
    head.writeUInt16LE(tag, 2)
    head.writeUInt32LE(value.length, 4)
    return Buffer.concat([head, value])
  }
  const u16 = (value: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b }
  const uid = (value: string): Buffer => Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1')
  const sopClass = uid(field === 0x0030 ? '1.2.840.10008.1.1' : store.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.2')
  const body = Buffer.concat([element(0x0002, sopClass), element(0x0100, u16(field)), element(0x0110, u16(messageId)),
    element(0x0800, u16(field === 0x0030 ? 0x0101 : 0x0000)),
    ...(store.sopInstanceUid === undefined ? [] : [element(0x1000, uid(store.sopInstanceUid))])])
  const length = Buffer.alloc(4)
  length.writeUInt32LE(body.length)
  return Buffer.concat([element(0x0000, length), body])
}
