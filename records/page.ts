import { decodeCursor, encodeCursor, isDatabaseInstant, type IdKind, type PagePosition } from './cursor.js'
import { EmptyTimeRangeError, InvalidTimeError } from './errors.js'

/** An instant as the database keeps it: ISO 8601 text in UTC to the microsecond ('2026-12-05T07:00:00.597500Z'). */
export type DatabaseInstant = string

/** A listing's filters, newest first; the same for every table that has `created_at` and an `id` tie-breaker. */
export interface PageQuery {
  /** Only this caller's rows; undefined: everyone's. */
  caller?: string
  /** Inclusive. */
  since?: DatabaseInstant
  /** Exclusive. */
  until?: DatabaseInstant
  /** Columns that must equal a value (absent values are not filtered on). */
  equal?: Record<string, string | undefined>
  limit: number
  /** The `next` of the previous page. */
  cursor?: string
}

/**
 * A `since` / `until` query value as an instant. The schema checks its shape (RFC 3339, with a zone); this checks
 * that it is one: a leap second (23:59:60) has no Date, and a year outside 0001-9999 once in UTC is refused by the
 * database (it would come back as a 503, the caller's mistake reported as an outage). A Date keeps milliseconds, and
 * RFC 3339 any number of digits: those after the milliseconds are kept to the microsecond, rounded up (no stored time
 * lies between the value and its next microsecond). Cut to the millisecond, `since=...:51.5975Z` took in the rows
 * of 51.597.
 */
function instantOf (text: string | undefined, parameter: string): DatabaseInstant | undefined {
  if (text === undefined) return undefined
  const fraction = /\.(\d+)/.exec(text)?.[1] ?? ''
  const micros = Number(fraction.slice(3, 6).padEnd(3, '0')) + (/[1-9]/.test(fraction.slice(6)) ? 1 : 0)
  const ms = new Date(text).getTime() + Math.floor(micros / 1000)
  if (!isDatabaseInstant(ms)) throw new InvalidTimeError(parameter)
  return `${new Date(ms).toISOString().slice(0, 23)}${String(micros % 1000).padStart(3, '0')}Z`
}

/** A listing's `since` and `until` as instants (instantOf), refused when the window ends before it begins. */
export function timeRange (query: { since?: string, until?: string }): { since?: DatabaseInstant, until?: DatabaseInstant } {
  const since = instantOf(query.since, 'since')
  const until = instantOf(query.until, 'until')
  // The same format and length in years 0001-9999: compared as text, compared as instants.
  if (since !== undefined && until !== undefined && since > until) throw new EmptyTimeRangeError()
  return { since, until }
}

/** A timestamptz column selected as ISO 8601 text in microseconds, UTC: the database's own precision, so it compares exactly. */
export function utcMicros (column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ${column}`
}

/** created_at so, for cursors. */
export const CREATED_AT_US = utcMicros('created_at')

/**
 * One page, newest first, ordered by (created_at, id) so that rows with the same time keep a stable order across
 * pages. One row more than the limit is asked for: its presence says whether there is a next page. The order names
 * the table's column: a bare created_at in ORDER BY is the selected one, CREATED_AT_US's text, which no index holds,
 * so every row of the filter was read and sorted before the limit.
 */
export function pageSql (table: string, columns: string, idKind: IdKind, query: PageQuery): { sql: string, params: unknown[] } {
  const where: string[] = []
  const params: unknown[] = []
  const condition = (sql: (placeholder: string) => string, value: unknown): void => {
    params.push(value)
    where.push(sql(`$${params.length}`))
  }
  if (query.caller !== undefined) condition((p) => `caller = ${p}`, query.caller)
  if (query.since !== undefined) condition((p) => `created_at >= ${p}::timestamptz`, query.since)
  if (query.until !== undefined) condition((p) => `created_at < ${p}::timestamptz`, query.until)
  for (const [column, value] of Object.entries(query.equal ?? {})) {
    if (value !== undefined) condition((p) => `${column} = ${p}`, value)
  }
  if (query.cursor !== undefined) {
    const after: PagePosition = decodeCursor(query.cursor, idKind)
    params.push(after.createdAt, after.id)
    where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::${idKind})`)
  }
  params.push(query.limit + 1)
  return {
    sql: `SELECT ${columns}, ${CREATED_AT_US} FROM ${table} ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ` +
      `ORDER BY ${table}.created_at DESC, ${table}.id DESC LIMIT $${params.length}`,
    params
  }
}

/** A page of items and the cursor of the next one, from the limit + 1 rows pageSql asked for. */
export function pageOf<Row extends { created_at: string, id: string | number }, Item> (
  rows: Row[], limit: number, item: (row: Row) => Item
): { items: Item[], next?: string } {
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return {
    items: page.map(item),
    ...(rows.length > limit && last !== undefined ? { next: encodeCursor({ createdAt: last.created_at, id: String(last.id) }) } : {})
  }
}
