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
 * are closed without a word, so a flood of idle sockets cannot hold memory; an association whose peer is gone while
 * its instance is classified counts as one until then, as it holds that instance.
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
    socket.on('close', () => { void association.settled().then(() => this.associations.delete(association)) })
  }

  /**
   * The limit one more association from `callingAe` would exceed, if any. The per-AE limit keeps one sender (a PACS
   * opening many parallel associations, a modality retrying in a loop) from taking every slot and shutting the others out.
   */
  private limitReached (callingAe: string): AssociationLimit | undefined {
    const serving = this.serving()
    const abandoned = (held: Association[]): number => held.filter((a) => a.state === 'closed').length
    if (serving.length >= this.options.maxAssociations) return { name: 'total', max: this.options.maxAssociations, abandoned: abandoned(serving) }
    const fromAe = serving.filter((a) => a.callingAe === callingAe)
    if (fromAe.length >= this.options.maxAssociationsPerAe) return { name: 'per calling AE', max: this.options.maxAssociationsPerAe, abandoned: abandoned(fromAe) }
    return undefined
  }

  async listen (): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.options.port, this.options.host, () => { this.server.off('error', reject); resolve() })
    })
    return (this.server.address() as AddressInfo).port
  }

  /**
   * Associations holding a slot: admitted (after A-ASSOCIATE-AC) and not closed, or closed while their instance is
   * classified, until it is. Reading is paused then, so an A-ABORT waits for the answer, but a reset closes at once.
   * Freed at the reset, the slot went to a new association while the instance was still in the node: a peer looping
   * "associate, send an instance, reset" held as many as it looped (four such peers, 38 at once with the default
   * limits, until the decoders' queue, shared with HTTP, refused more). Held, the limits bound the instances received
   * and not yet classified too. Such an instance is still classified, not dropped: it arrived whole, its decoding may
   * be under way, and its record shows in its study even if the peer never resends it (a resend is recorded again;
   * GET /studies shows the newer record).
   */
  private serving (): Association[] {
    return [...this.associations].filter((a) => a.admitted && (a.state !== 'closed' || a.classifying))
  }

  /** Stops accepting connections, lets the instances being classified be answered (or, their peer gone, classified), then aborts every association. */
  async close (): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    await Promise.all([...this.associations].map(async (association) => await association.shutdown()))
    await closed
  }
}
