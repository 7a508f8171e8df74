import { PDU, PduError } from './pdu.js'

/**
 * Largest PDU accepted before an association exists: the A-ASSOCIATE-RQ, which DICOM does not bound (the Maximum
 * Length it carries is for P-DATA-TF). A sender proposing 128 contexts (the most there are) of 20 transfer syntaxes
 * each asks in 70 KiB, over the 64 KiB this was; 1 MiB holds 128 contexts of 64-character UIDs with 110 syntaxes
 * each. Connections beyond twice DICOM_MAX_ASSOCIATIONS are closed, so the unassociated hold 16 MiB at most by default.
 */
const MAX_REQUEST_PDU = 1024 * 1024

/** The bytes read from one DICOM connection, cut into whole PDUs (dicom-node/association.ts). */
export class PduBuffer {
  private chunks: Buffer[] = []
  private held = 0
  private count = 0

  /** Bytes read and not yet taken as a PDU. */
  get bytes (): number {
    return this.held
  }

  /** How many PDUs were taken so far: the PDU timeout tells a new partial PDU from the one it is watching by it. */
  get taken (): number {
    return this.count
  }

  push (chunk: Buffer): void {
    this.chunks.push(chunk)
    this.held += chunk.length
  }

  /** Drops what is held: an association that closed reads nothing more. */
  clear (): void {
    this.chunks = []
    this.held = 0
  }

  /**
   * The next whole PDU, or undefined until more arrive. `maxPduBytes`: the bound negotiated for an established
   * association; undefined before one, when only an A-ASSOCIATE-RQ (or an A-ABORT) may come, refused at its header
   * rather than read whole first. Throws PduError for a PDU refused so.
   */
  next (maxPduBytes: number | undefined): { type: number, body: Buffer } | undefined {
    if (this.held < 6) return undefined
    if (this.chunks[0].length < 6) this.chunks = [Buffer.concat(this.chunks)]
    const type = this.chunks[0][0]
    if (maxPduBytes === undefined && type !== PDU.associateRq && type !== PDU.abort) throw new PduError(`unexpected PDU type ${type} before association`)
    const length = this.chunks[0].readUInt32BE(2)
    if (maxPduBytes !== undefined && length > maxPduBytes) throw new PduError(`PDU of ${length} bytes over the ${maxPduBytes} negotiated`)
    if (maxPduBytes === undefined && length > MAX_REQUEST_PDU) throw new PduError(`PDU of ${length} bytes before an association, over the node's ${MAX_REQUEST_PDU}`)
    // Joined once whole: joined at every chunk, a PDU sent in n small pieces cost n copies of what had arrived.
    if (this.held < 6 + length) return undefined
    const data = this.chunks.length > 1 ? Buffer.concat(this.chunks) : this.chunks[0]
    const body = data.subarray(6, 6 + length)
    this.chunks = data.length > 6 + length ? [data.subarray(6 + length)] : []
    this.held = data.length - 6 - length
    this.count++
    return { type: data[0], body }
  }
}
