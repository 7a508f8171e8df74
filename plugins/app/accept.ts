import type { FastifyRequest } from 'fastify'
import { ServiceError } from '../../inference/errors.js'
import { JSON_OR_FHIR } from '../../schemas/fhir.js'

/** The Accept header names no media type this route can answer with. */
export class NotAcceptableError extends ServiceError {
  constructor (offered: readonly string[]) {
    super('NOT_ACCEPTABLE', 406, `This answer is available as ${offered.join(' or ')} only; send one of them in Accept (or no Accept header).`)
  }
}

interface MediaRange { type: string, subtype: string, q: number }

function mediaRanges (accept: string): MediaRange[] {
  return accept.split(',').flatMap((part) => {
    const [range, ...parameters] = part.split(';').map((piece) => piece.trim().toLowerCase())
    const [type, subtype] = range.split('/')
    if (type === undefined || subtype === undefined || type === '' || subtype === '') return []
    const qParameter = parameters.find((parameter) => parameter.startsWith('q='))
    const q = qParameter === undefined ? 1 : Number(qParameter.slice(2))
    return Number.isFinite(q) ? [{ type, subtype, q }] : []
  })
}

/** How closely a range names a type: 3 exact, 2 type/*, 1 * / *, 0 not at all. */
function specificity (range: MediaRange, type: string, subtype: string): number {
  if (range.type === type && range.subtype === subtype) return 3
  if (range.type === type && range.subtype === '*') return 2
  return range.type === '*' && range.subtype === '*' ? 1 : 0
}

/**
 * The media type to answer with (RFC 9110 12.5.1): each offered type gets the q of the most specific range that
 * matches it; the highest q wins, the first offered on a tie. No Accept header: the first offered. Undefined when
 * nothing offered is acceptable (q=0 or not named): the caller answers 406.
 */
export function answerType (accept: string | undefined, offered: readonly string[]): string | undefined {
  if (accept === undefined || accept.trim() === '') return offered[0]
  const ranges = mediaRanges(accept)
  let best: { type: string, q: number } | undefined
  for (const candidate of offered) {
    const [type, subtype] = candidate.split('/')
    let match: { q: number, specificity: number } | undefined
    for (const range of ranges) {
      const s = specificity(range, type, subtype)
      if (s > 0 && (match === undefined || s > match.specificity)) match = { q: range.q, specificity: s }
    }
    if (match !== undefined && match.q > 0 && (best === undefined || match.q > best.q)) best = { type: candidate, q: match.q }
  }
  return best?.type
}

/** An onRequest hook refusing (406) an Accept none of `offered` satisfies, before the body is read or any work done. */
export function acceptOnly (offered: readonly string[]): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    if (answerType(request.headers.accept, offered) === undefined) throw new NotAcceptableError(offered)
  }
}

/** Whether a route that answers JSON_OR_FHIR answers this Accept with the FHIR resource. */
export function wantsFhir (accept: string | undefined): boolean {
  return answerType(accept, JSON_OR_FHIR) === 'application/fhir+json'
}
