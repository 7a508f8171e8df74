import type { ContextRejection } from './events.js'
import type { ContextAnswer, ProposedContext } from './pdu.js'

const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1'
const STORAGE_SOP_CLASS_ROOT = '1.2.840.10008.5.1.4.1.1.'
const IMPLICIT_LE = '1.2.840.10008.1.2'
const EXPLICIT_LE = '1.2.840.10008.1.2.1'

export interface NegotiatedContext {
  abstractSyntax: string
  transferSyntax: string
}

export interface RejectedContext extends ProposedContext {
  reason: ContextRejection
}

/** Transfer syntax for one proposed context: uncompressed first (always decodable), else the first we can decode. */
function chooseTransferSyntax (proposed: string[], accepts: (uid: string) => boolean): string | undefined {
  return [EXPLICIT_LE, IMPLICIT_LE].find((uid) => proposed.includes(uid)) ?? proposed.find(accepts)
}

/**
 * The answer to each proposed presentation context. Verification and every storage SOP class are accepted, in a
 * transfer syntax `accepts` (a PACS pushing a whole study is not turned away: the refusal comes per instance); any
 * other abstract syntax (query/retrieve, worklist, storage commitment, ...) is refused, and so is a context offering
 * no syntax we decode. `rejected` lists the refused ones, for the event that tells of them.
 */
export function negotiate (proposed: ProposedContext[], accepts: (uid: string) => boolean): { answers: ContextAnswer[], accepted: Map<number, NegotiatedContext>, rejected: RejectedContext[] } {
  const accepted = new Map<number, NegotiatedContext>()
  const rejected: RejectedContext[] = []
  const answers = proposed.map((context): ContextAnswer => {
    const { id, abstractSyntax, transferSyntaxes } = context
    if (abstractSyntax !== VERIFICATION_SOP_CLASS && !abstractSyntax.startsWith(STORAGE_SOP_CLASS_ROOT)) {
      rejected.push({ ...context, reason: 'abstract_syntax_not_supported' })
      return { id, result: 3 }
    }
    const transferSyntax = chooseTransferSyntax(transferSyntaxes, accepts)
    if (transferSyntax === undefined) {
      rejected.push({ ...context, reason: 'transfer_syntaxes_not_supported' })
      return { id, result: 4 }
    }
    accepted.set(id, { abstractSyntax, transferSyntax })
    return { id, result: 0, transferSyntax }
  })
  return { answers, accepted, rejected }
}
