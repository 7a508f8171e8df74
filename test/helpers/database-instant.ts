import type { DatabaseInstant } from '../../records/page.js'

/** A Date (whole milliseconds) as the store's since/until take it (records/page.ts). */
export function databaseInstant (date: Date): DatabaseInstant {
  return `${date.toISOString().slice(0, 23)}000Z`
}
