import type dicomParser from 'dicom-parser'

const TAG = {
  studyDate: 'x00080020',
  seriesDate: 'x00080021',
  acquisitionDate: 'x00080022',
  acquisitionDateTime: 'x0008002a',
  studyTime: 'x00080030',
  seriesTime: 'x00080031',
  acquisitionTime: 'x00080032',
  timezoneOffset: 'x00080201'
} as const

const DATE = /^(\d{4})(\d{2})(\d{2})$/
const TIME = /^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$/
const OFFSET = /^([+-])(\d{2})(\d{2})$/

function text (dataSet: dicomParser.DataSet, tag: string): string | undefined {
  const value = dataSet.string(tag)?.replace(/\0/g, '').trim()
  return value === undefined || value === '' ? undefined : value
}

/** A real calendar day (no month 13, no 30 February): FHIR's dateTime refuses the others. */
function isCalendarDay ([, year, month, day]: RegExpExecArray): boolean {
  const date = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day)))
  return Number(year) >= 1 && date.getUTCMonth() === Number(month) - 1 && date.getUTCDate() === Number(day)
}

/** Hours 00-23, minutes and seconds 00-59 (60: a leap second), as FHIR's dateTime allows. */
const isClockTime = ([, hours, minutes, seconds]: RegExpExecArray): boolean =>
  Number(hours) <= 23 && Number(minutes ?? 0) <= 59 && Number(seconds ?? 0) <= 60

/** UTC offsets FHIR accepts: -13:59 to +14:00. */
const isUtcOffset = ([, , hours, minutes]: RegExpExecArray): boolean =>
  Number(minutes) <= 59 && (Number(hours) <= 13 || (hours === '14' && minutes === '00'))

/**
 * A DICOM DA, TM and UTC offset as a FHIR dateTime; without an offset, the date alone (FHIR needs a zone with a time).
 * A date that is no calendar day gives nothing; a time or offset out of range, the date alone.
 */
function fhirDateTime (date: string, time: string | undefined, offset: string | undefined): string | undefined {
  const d = DATE.exec(date)
  if (d === null || !isCalendarDay(d)) return undefined
  const day = `${d[1]}-${d[2]}-${d[3]}`
  const t = time === undefined ? null : TIME.exec(time)
  const zone = offset === undefined ? null : OFFSET.exec(offset)
  if (t === null || zone === null || !isClockTime(t) || !isUtcOffset(zone)) return day
  const seconds = `${t[3] ?? '00'}${t[4] ?? ''}`
  return `${day}T${t[1]}:${t[2] ?? '00'}:${seconds}${zone[1]}${zone[2]}:${zone[3]}`
}

/**
 * When the image was acquired, as a FHIR dateTime: AcquisitionDateTime (0008,002A), else AcquisitionDate + Time,
 * else Series, else Study date and time. The time is kept only with a known UTC offset (the DT's own suffix or
 * TimezoneOffsetFromUTC (0008,0201)); otherwise the date alone is given, never a guessed zone.
 */
export function acquisitionDateTime (dataSet: dicomParser.DataSet): string | undefined {
  const offset = text(dataSet, TAG.timezoneOffset)
  const dt = text(dataSet, TAG.acquisitionDateTime)
  if (dt !== undefined) {
    const [, date, time, zone] = /^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?$/.exec(dt) ?? []
    const fromDt = date === undefined ? undefined : fhirDateTime(date, time, zone ?? offset)
    if (fromDt !== undefined) return fromDt
  }
  for (const [dateTag, timeTag] of [[TAG.acquisitionDate, TAG.acquisitionTime], [TAG.seriesDate, TAG.seriesTime], [TAG.studyDate, TAG.studyTime]]) {
    const date = text(dataSet, dateTag)
    const value = date === undefined ? undefined : fhirDateTime(date, text(dataSet, timeTag), offset)
    if (value !== undefined) return value
  }
  return undefined
}
