import { InvalidCursorError } from './errors.js'

/** Where a page ended: the last row's time (microseconds, UTC, as the database holds it) and id, its tie-breaker (a UUID, or a number as digits). */
export interface PagePosition {
  createdAt: string
  id: string
}

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
/** The id kinds of the paged tables: predictions have UUIDs, audit events bigint identities. */
const ID = {
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  bigint: /^[1-9][0-9]{0,17}$/
}
export type IdKind = keyof typeof ID

/** Opaque to callers: base64url of the position. */
export function encodeCursor (position: PagePosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url')
}

/** Years a PostgreSQL timestamptz reads in ISO form, in UTC. */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z')
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z')

/** Whether the database can compare with this instant (ms since the epoch; NaN: no). */
export function isDatabaseInstant (time: number): boolean {
  return time >= FIRST_INSTANT && time <= LAST_INSTANT
}

/** A real instant, not only its shape: 2024-02-30 or month 13 would reach the database and fail there (a 503, not a 400). */
function isTime (text: string): boolean {
  if (!TIME.test(text)) return false
  const parsed = new Date(text)
  return isDatabaseInstant(parsed.getTime()) && parsed.toISOString().slice(0, 23) === text.slice(0, 23)
}

/** A cursor of another listing (another id kind) is refused like a forged one. */
export function decodeCursor (cursor: string, idKind: IdKind): PagePosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' &&
      isTime(value[0]) && ID[idKind].test(value[1])) {
      return { createdAt: value[0], id: value[1] }
    }
  } catch {}
  throw new InvalidCursorError()
}
