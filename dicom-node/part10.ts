import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION } from './pdu.js'

/**
 * A data set received over the network, as a DICOM Part 10 file (PS3.10 7.1): 128-byte preamble, "DICM", and the
 * File Meta Information (explicit VR little endian) naming its SOP class, instance and transfer syntax, so that the
 * one decoding path the service has for files reads it unchanged.
 */
export interface MetaInformation {
  sopClassUid: string
  sopInstanceUid: string
  transferSyntaxUid: string
  /** The AE title that sent it (SourceApplicationEntityTitle). */
  sourceAe?: string
}

function element (elem: number, vr: string, value: Buffer): Buffer {
  const long = vr === 'OB'
  const head = Buffer.alloc(long ? 12 : 8)
  head.writeUInt16LE(0x0002, 0)
  head.writeUInt16LE(elem, 2)
  head.write(vr, 4, 'latin1')
  if (long) head.writeUInt32LE(value.length, 8)
  else head.writeUInt16LE(value.length, 6)
  return Buffer.concat([head, value])
}

const uid = (value: string): Buffer => Buffer.from(value.length % 2 === 0 ? value : `${value}\0`, 'latin1')
const text = (value: string): Buffer => Buffer.from(value.length % 2 === 0 ? value : `${value} `, 'latin1')

export function part10 (dataSet: Buffer, meta: MetaInformation): Buffer {
  const elements = Buffer.concat([
    element(0x0001, 'OB', Buffer.from([0, 1])),
    element(0x0002, 'UI', uid(meta.sopClassUid)),
    element(0x0003, 'UI', uid(meta.sopInstanceUid)),
    element(0x0010, 'UI', uid(meta.transferSyntaxUid)),
    element(0x0012, 'UI', uid(IMPLEMENTATION_CLASS_UID)),
    element(0x0013, 'SH', text(IMPLEMENTATION_VERSION)),
    ...(meta.sourceAe === undefined || meta.sourceAe === '' ? [] : [element(0x0016, 'AE', text(meta.sourceAe))])
  ])
  const groupLength = Buffer.alloc(4)
  groupLength.writeUInt32LE(elements.length)
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element(0x0000, 'UL', groupLength), elements, dataSet])
}
