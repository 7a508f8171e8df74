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
