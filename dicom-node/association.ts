import type { Socket } from 'node:net'
import { COMMAND, CommandError, parseCommand, requestName, responseCommand, STATUS, type Command } from './dimse.js'
import { negotiate, type NegotiatedContext } from './contexts.js'
import type { AssociationRefusal, CommandRefusal } from './events.js'
import { part10 } from './part10.js'
import { PduBuffer } from './pdu-buffer.js'
import type { AssociationLimit, AssociationPolicy, StoreResult } from './policy.js'
import {
  abort, associateAccept, associateReject, isAeTitle, parseAssociateRequest, parsePData, pData, PDU, PduError, REJECT, releaseResponse,
  type AssociateRequest
} from './pdu.js'

/**
 * Largest DIMSE command set: a C-STORE-RQ is a few hundred bytes. Command fragments are kept until the last one, so
 * without a bound a peer that never sends it fills memory (the data set has maxInstanceBytes; the command had none).
 */
const MAX_COMMAND_BYTES = 64 * 1024

/**
 * One TCP connection of the DICOM node, from A-ASSOCIATE-RQ to release or abort. Messages are handled one at a time:
 * reading pauses while an instance is classified, so a peer that sends faster than we classify is held back by TCP
 * instead of filling memory; a data set over maxInstanceBytes is drained and refused without being kept.
 */
export class Association {
  state: 'awaiting-request' | 'established' | 'closed' = 'awaiting-request'
  admitted = false
  private request: AssociateRequest | undefined
  private accepted = new Map<number, NegotiatedContext>()
  private readonly received = new PduBuffer()
  private command: { context: number, parts: Buffer[], bytes: number } | undefined
  private pending: { context: number, command: Command, parts: Buffer[], bytes: number, tooLarge: boolean } | undefined
  private busy: Promise<void> | undefined
  private draining = false
  /** PDUs taken so far, and the deadline of the one partly received (its serial is the count when it began). */
  private partial: { serial: number, timer: NodeJS.Timeout } | undefined
  /** Data-set bytes received and milliseconds spent classifying, over the association's life (see watchProgress). */
  private instanceBytes = 0
  private classifyingMs = 0
  private classifyingSince: number | undefined
  private progressTimer: NodeJS.Timeout | undefined

  constructor (private readonly socket: Socket, private readonly policy: AssociationPolicy) {
    socket.setNoDelay(true)
    socket.setTimeout(policy.idleTimeoutMs, () => {
      if (this.busy !== undefined) return // classifying: the peer is waiting for us, not idle
      policy.event('idle-timeout', { callingAe: this.request?.callingAe, refusal: 'idle_timeout' })
      this.abort(2, 0)
    })
    socket.on('data', (chunk: Buffer) => {
      // Bytes read after an abort, before the socket is destroyed: the PDU that failed is still buffered, and each
      // chunk counted and logged it again as another protocol error.
      if (this.state === 'closed') return
      this.received.push(chunk)
      void this.drain()
      this.watchPartialPdu()
    })
    socket.on('error', () => this.close())
    socket.on('close', () => this.close())
  }

  get callingAe (): string | undefined {
    return this.request?.callingAe
  }

  /** Whether an instance of this association is being classified (handed to `store`, not answered yet), even if closed. */
  get classifying (): boolean {
    return this.busy !== undefined
  }

  /** Resolves once no instance of this association is being classified. */
  async settled (): Promise<void> {
    await this.busy
  }

  /** Sends A-ABORT (after the message being handled is answered) and closes: used when the node stops. */
  async shutdown (): Promise<void> {
    await this.settled()
    this.abort(2, 0)
  }

  /**
   * A PDU must arrive whole within DICOM_IDLE_TIMEOUT_S of its first byte. The idle timeout alone restarts with every
   * byte, so a peer trickling one byte a second held its connection for good, and twice DICOM_MAX_ASSOCIATIONS such
   * peers shut every PACS out. A PDU is at most DICOM_MAX_PDU_BYTES (64 KiB by default): a working peer sends one in
   * far less. Bytes that wait while we classify (reading is paused then) are not the peer's delay: the clock restarts.
   */
  private watchPartialPdu (): void {
    if (this.received.bytes === 0 || this.state === 'closed') {
      clearTimeout(this.partial?.timer)
      this.partial = undefined
      return
    }
    if (this.partial?.serial === this.received.taken) return
    clearTimeout(this.partial?.timer)
    const serial = this.received.taken
    const timer = setTimeout(() => {
      this.partial = undefined
      if (this.busy !== undefined || this.received.taken !== serial) { this.watchPartialPdu(); return }
      this.policy.event('pdu-timeout', { callingAe: this.request?.callingAe, refusal: 'pdu_timeout', received: this.received.bytes })
      this.abort(2, 0)
    }, this.policy.idleTimeoutMs).unref()
    this.partial = { serial, timer }
  }

  /**
   * Each DICOM_IDLE_TIMEOUT_S of an association's life, its peer must have sent DICOM_MIN_RATE_BYTES_S per second of
   * instance data (data-set fragments). The idle and PDU timeouts restart with every PDU, so C-ECHOs, or P-DATA-TF of
   * a few bytes, sent just often enough held a slot for good, and DICOM_MAX_ASSOCIATIONS such peers shut every PACS
   * out. A push at any working speed sends far more; the time we spend classifying is ours, not counted against it.
   */
  private watchProgress (): void {
    const { idleTimeoutMs, minRateBytesPerS } = this.policy
    if (minRateBytesPerS === 0) return
    const from = { at: performance.now(), ours: this.ourMs(), bytes: this.instanceBytes }
    const judge = (): void => {
      if (this.state === 'closed') return
      const peerMs = performance.now() - from.at - (this.ourMs() - from.ours)
      if (peerMs < idleTimeoutMs) { this.progressTimer = setTimeout(judge, idleTimeoutMs - peerMs).unref(); return }
      const sent = this.instanceBytes - from.bytes
      if (sent >= minRateBytesPerS * idleTimeoutMs / 1000) { this.watchProgress(); return }
      this.policy.event('too-slow', { callingAe: this.request?.callingAe, refusal: 'too_slow', instanceBytes: sent, seconds: idleTimeoutMs / 1000 })
      this.abort(2, 0)
    }
    this.progressTimer = setTimeout(judge, idleTimeoutMs).unref()
  }

  private ourMs (): number {
    return this.classifyingMs + (this.classifyingSince === undefined ? 0 : performance.now() - this.classifyingSince)
  }

  private close (): void {
    if (this.state === 'closed') return
    clearTimeout(this.partial?.timer)
    clearTimeout(this.progressTimer)
    this.state = 'closed'
    this.received.clear()
    this.pending = undefined
    this.socket.destroy()
  }

  private abort (source: 0 | 2, reason: number): void {
    if (this.state === 'closed') return
    clearTimeout(this.partial?.timer)
    clearTimeout(this.progressTimer)
    this.socket.end(abort(source, reason))
    this.state = 'closed'
    this.received.clear()
    this.pending = undefined
    this.socket.destroySoon()
  }

  /**
   * The last PDU (A-ASSOCIATE-RJ, A-RELEASE-RP), then the connection closed on our side whatever the peer does: ended
   * only, it stayed open until the peer closed its side, and a peer that never did kept it for good. Sixteen such
   * peers (twice DICOM_MAX_ASSOCIATIONS), refused for a wrong called AE title, had every other connection dropped.
   */
  private answerAndClose (pdu: Buffer): void {
    this.send([pdu])
    this.socket.destroySoon()
    this.state = 'closed'
  }

  private send (buffers: Buffer[]): void {
    if (this.state !== 'closed') for (const buffer of buffers) this.socket.write(buffer)
  }

  /** The next whole PDU from the bytes read, or undefined until more arrive. */
  private nextPdu (): { type: number, body: Buffer } | undefined {
    // A closed association reads nothing more: what was buffered behind an A-ABORT or a shutdown is dropped with it.
    if (this.state === 'closed') return undefined
    return this.received.next(this.state === 'established' ? this.policy.maxPduBytes : undefined)
  }

  private async drain (): Promise<void> {
    if (this.draining) return
    this.draining = true
    try {
      for (let next = this.nextPdu(); next !== undefined && this.state !== 'closed'; next = this.nextPdu()) {
        await this.handle(next.type, next.body)
      }
    } catch (error) {
      this.policy.event('protocol-error', { callingAe: this.request?.callingAe, refusal: 'protocol_error', reason: (error as Error).message })
      this.abort(2, error instanceof PduError ? 6 : 0)
    } finally {
      this.draining = false
      this.watchPartialPdu()
    }
  }

  private async handle (type: number, body: Buffer): Promise<void> {
    if (type === PDU.abort) { this.close(); return }
    if (this.state === 'awaiting-request') { // nextPdu() let only an A-ASSOCIATE-RQ through
      this.associate(parseAssociateRequest(body))
      return
    }
    if (type === PDU.releaseRq) {
      this.answerAndClose(releaseResponse())
      return
    }
    if (type !== PDU.pData) throw new PduError(`unexpected PDU type ${type}`)
    // Closed while a message of the PDU was classified: the rest of it is dropped, as bytes buffered behind it are.
    for (const pdv of parsePData(body)) if (this.state !== 'closed') await this.fragment(pdv.contextId, pdv.command, pdv.last, pdv.value)
  }

  private associate (request: AssociateRequest): void {
    this.request = request
    const { policy } = this
    const refuse = (why: keyof typeof REJECT, refusal: AssociationRefusal, limit?: AssociationLimit): void => {
      policy.event('association-rejected', { callingAe: request.callingAe, calledAe: request.calledAe, reason: why, refusal, ...(limit === undefined ? {} : { limit: limit.name, max: limit.max, abandoned: limit.abandoned }) })
      this.answerAndClose(associateReject(REJECT[why]))
    }
    // A bit per protocol version; PS3.8 9.3.2: a receiver of version 1 "shall only test that bit 0 is set".
    if ((request.protocolVersion & 1) === 0) { refuse('protocolVersionNotSupported', 'protocol_version'); return }
    if (request.calledAe !== policy.aeTitle) { refuse('calledAeNotRecognized', 'called_ae_not_recognized'); return }
    // A calling AE title names the caller of its records (dicom:<title>): one with a NUL could not be recorded at all.
    if (!isAeTitle(request.callingAe) || (policy.allowedAes.length > 0 && !policy.allowedAes.includes(request.callingAe))) { refuse('callingAeNotRecognized', 'calling_ae_not_recognized'); return }
    const limit = policy.admit(request.callingAe)
    if (limit !== undefined) { refuse('localLimitExceeded', limit.name === 'total' ? 'limit_total' : 'limit_per_ae', limit); return }
    this.admitted = true
    const { answers, accepted, rejected } = negotiate(request.contexts, policy.acceptsTransferSyntax)
    this.accepted = accepted
    this.state = 'established'
    policy.event('association-accepted', { callingAe: request.callingAe, contexts: accepted.size, proposed: request.contexts.length })
    // A sender asking for a service the node does not offer (C-FIND, a worklist, ...) or a syntax it cannot decode
    if (rejected.length > 0) policy.event('contexts-rejected', { callingAe: request.callingAe, rejectedContexts: rejected })
    this.send([associateAccept(request, answers, policy.maxPduBytes)])
    this.watchProgress()
  }

  private async fragment (context: number, isCommand: boolean, last: boolean, value: Buffer): Promise<void> {
    if (isCommand) {
      this.command ??= { context, parts: [], bytes: 0 }
      this.command.bytes += value.length
      if (this.command.bytes > MAX_COMMAND_BYTES) throw new CommandError(`a command set over ${MAX_COMMAND_BYTES} bytes`)
      this.command.parts.push(value)
      if (!last) return
      const command = parseCommand(Buffer.concat(this.command.parts))
      this.command = undefined
      if (!command.hasDataSet) { await this.respond(context, command); return }
      this.pending = { context, command, parts: [], bytes: 0, tooLarge: false }
      return
    }
    const pending = this.pending
    if (pending === undefined) throw new CommandError('data set fragment without a command')
    this.instanceBytes += value.length
    pending.bytes += value.length
    if (pending.bytes > this.policy.maxInstanceBytes) { pending.tooLarge = true; pending.parts = [] } else pending.parts.push(value)
    if (!last) return
    this.pending = undefined
    await this.respond(context, pending.command, pending)
  }

  private async respond (context: number, command: Command, data?: { parts: Buffer[], bytes: number, tooLarge: boolean }): Promise<void> {
    const negotiated = this.accepted.get(context)
    let result: StoreResult
    if (negotiated === undefined) {
      this.commandRefused(context, command, 'context_not_accepted')
      result = { status: STATUS.processingFailure, comment: 'presentation context not accepted' }
    } else if (command.field === COMMAND.cEchoRq) {
      result = { status: STATUS.success }
    } else if (command.field !== COMMAND.cStoreRq || data === undefined) {
      this.commandRefused(context, command, 'unrecognized_operation')
      result = { status: STATUS.unrecognizedOperation, comment: 'this node performs C-ECHO and C-STORE only' }
    } else if (data.tooLarge) {
      this.policy.event('instance-refused', { callingAe: this.request?.callingAe, refusedInstance: 'FILE_TOO_LARGE', bytes: data.bytes, max: this.policy.maxInstanceBytes })
      result = { status: STATUS.cannotUnderstand, comment: `FILE_TOO_LARGE: instance over ${this.policy.maxInstanceBytes} bytes` }
    } else {
      const sopClassUid = command.affectedSopClassUid ?? negotiated.abstractSyntax
      const sopInstanceUid = command.affectedSopInstanceUid ?? ''
      const bytes = part10(Buffer.concat(data.parts), { sopClassUid, sopInstanceUid, transferSyntaxUid: negotiated.transferSyntax, sourceAe: this.request?.callingAe })
      data.parts = []
      this.socket.pause()
      this.classifyingSince = performance.now()
      const handling = this.policy.store({ callingAe: this.request?.callingAe ?? '', sopClassUid, sopInstanceUid, transferSyntaxUid: negotiated.transferSyntax, bytes })
      this.busy = handling.then(() => {}, () => {})
      try {
        result = await handling
      } catch {
        result = { status: STATUS.processingFailure, comment: 'INTERNAL_ERROR' }
      } finally {
        this.classifyingMs = this.ourMs()
        this.classifyingSince = undefined
        this.busy = undefined
        if (this.state !== 'closed') this.socket.resume()
      }
    }
    this.send(pData(context, true, responseCommand(command, result.status, result.comment), this.request?.maxPduLength ?? 0))
  }

  /** A request answered without being performed: told, as its sender is misconfigured (it queries us, or ignores the negotiation). */
  private commandRefused (context: number, command: Command, refusal: CommandRefusal): void {
    const field = `0x${command.field.toString(16).padStart(4, '0')}`
    this.policy.event('command-refused', { callingAe: this.request?.callingAe, refusedCommand: refusal, command: requestName(command.field), field, context, sopClassUid: command.affectedSopClassUid })
  }
}
