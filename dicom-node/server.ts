import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Association } from './association.js'
import type { AssociationLimit, AssociationPolicy } from './policy.js'

export type { StoreRequest, StoreResult } from './policy.js'

export interface DicomNodeOptions extends Omit<AssociationPolicy, 'admit'> {
  host: string
  port: number
  /** Associations served at once; the next one is rejected (transient, local limit exceeded). */
  maxAssociations: number
  /** Associations served at once for one calling AE title, at most maxAssociations; the next one is rejected the same way. */
  maxAssociationsPerAe: number
}

/**
 * A DICOM storage SCP with verification (C-STORE, C-ECHO) on one TCP port. What happens to a received instance is
 * the caller's `store`; this class owns only the protocol and the limits: AE titles, PDU size, instance size,
 * associations at once (in all, and per calling AE title), idle time. Connections beyond twice the association limit
 * are closed without a word, so a flood of idle sockets cannot hold memory.
 */
export class DicomNode {
  private readonly server: Server
  private readonly associations = new Set<Association>()

  constructor (private readonly options: DicomNodeOptions) {
    this.server = createServer((socket) => this.connection(socket))
    this.server.on('error', (error) => options.event('server-error', { reason: error.message }))
  }

  private connection (socket: Socket): void {
    if (this.associations.size >= 2 * this.options.maxAssociations) {
      this.options.event('connection-dropped', { remote: socket.remoteAddress, reason: 'too many connections', refusal: 'too_many_connections' })
      socket.destroy()
      return
    }
    const association: Association = new Association(socket, {
      ...this.options,
      admit: (callingAe) => this.limitReached(callingAe)
    })
    this.associations.add(association)
    socket.on('close', () => this.associations.delete(association))
  }

  /**
   * The limit one more association from `callingAe` would exceed, if any. The per-AE limit keeps one sender (a PACS
   * opening many parallel associations, a modality retrying in a loop) from taking every slot and shutting the others out.
   */
  private limitReached (callingAe: string): AssociationLimit | undefined {
    const serving = this.serving()
    if (serving.length >= this.options.maxAssociations) return { name: 'total', max: this.options.maxAssociations }
    const fromAe = serving.filter((a) => a.callingAe === callingAe).length
    if (fromAe >= this.options.maxAssociationsPerAe) return { name: 'per calling AE', max: this.options.maxAssociationsPerAe }
    return undefined
  }

  async listen (): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.port, this.options.host, () => { this.server.off('error', reject); resolve() })
    })
    return (this.server.address() as AddressInfo).port
  }

  /** Associations currently admitted (after A-ASSOCIATE-AC) and not closed. */
  private serving (): Association[] {
    return [...this.associations].filter((a) => a.admitted && a.state !== 'closed')
  }

  /** Stops accepting connections, lets the instances being classified be answered, then aborts every association. */
  async close (): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    await Promise.all([...this.associations].map(async (association) => await association.shutdown()))
    await closed
  }
}
