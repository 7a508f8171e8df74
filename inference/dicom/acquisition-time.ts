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

/** A DICOM DA, TM and UTC offset as a FHIR dateTime; without an offset, the date alone (FHIR needs a zone with a time). */
function fhirDateTime (date: string, time: string | undefined, offset: string | undefined): string | undefined {
  const d = DATE.exec(date)
  if (d === null) return undefined
  const day = `${d[1]}-${d[2]}-${d[3]}`
  const t = time === undefined ? null : TIME.exec(time)
  const zone = offset === undefined ? null : OFFSET.exec(offset)
  if (t === null || zone === null) return day
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
