import { InvalidCursorError } from './errors.js'

/** Where a page ended: the last row's time (microseconds, UTC, as the database holds it) and id, its tie-breaker. */
export interface PagePosition {
  createdAt: string
  id: string
}

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Opaque to callers: base64url of the position. */
export function encodeCursor (position: PagePosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url')
}

export function decodeCursor (cursor: string): PagePosition {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && value.length === 2 && TIME.test(String(value[0])) && UUID.test(String(value[1]))) {
      return { createdAt: value[0], id: value[1] }
    }
  } catch {}
  throw new InvalidCursorError()
}
