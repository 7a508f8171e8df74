import type dicomParser from 'dicom-parser'
import { CorruptDicomError } from './errors.js'

/** A VOI window, centre and width in the Modality LUT's output unit (HU for CT). */
export interface DicomWindow {
  center: number
  width: number
}

/** Where an instance (or one frame of it) sits in its series, so results can be ordered by slice. */
export interface SlicePlacement {
  /** InstanceNumber (0020,0013). */
  instanceNumber?: number
  /**
   * Position of the slice along its normal, in mm: ImagePositionPatient (0020,0032) projected on the cross product of
   * the ImageOrientationPatient (0020,0037) row and column directions; SliceLocation (0020,1041) when those are absent.
   */
  slicePosition?: number
}

/** The Modality LUT, VOI and plane attributes of one frame (PS3.3 C.7.6.16 for the functional groups). */
export interface FrameAttributes {
  rescaleSlope: number
  rescaleIntercept: number
  /** Whether RescaleSlope/RescaleIntercept were given at all (a display image has none). */
  hasRescale: boolean
  /** Named when one of RescaleSlope/RescaleIntercept was given without the other (image-kind.ts refuses it for HU). */
  halfRescale?: { missing: string, given: string }
  /** First WindowCenter/WindowWidth pair, when both are present and the width is at least 1. */
  window?: DicomWindow
  slicePosition?: number
  /** The anatomical plane the slice is closest to, from ImageOrientationPatient (absent without one). */
  plane?: SlicePlane
}

export type SlicePlane = 'axial' | 'coronal' | 'sagittal'

const TAG = {
  imagePosition: 'x00200032',
  imageOrientation: 'x00200037',
  sliceLocation: 'x00201041',
  windowCenter: 'x00281050',
  windowWidth: 'x00281051',
  rescaleIntercept: 'x00281052',
  rescaleSlope: 'x00281053',
  sharedFunctionalGroups: 'x52009229',
  perFrameFunctionalGroups: 'x52009230',
  pixelValueTransformation: 'x00289145',
  frameVoiLut: 'x00289132',
  planePosition: 'x00209113',
  planeOrientation: 'x00209116'
} as const

function finite (value: number | undefined): number | undefined {
  return value !== undefined && Number.isFinite(value) ? value : undefined
}

const SLOPE = 'Rescale Slope (0028,1053)'
const INTERCEPT = 'Rescale Intercept (0028,1052)'

/** A Decimal String (PS3.5 6.2): an optional sign, digits with an optional point, an optional exponent. */
const DECIMAL_STRING = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/**
 * RescaleSlope or RescaleIntercept: undefined when absent or empty (the identity then stands in for it), else its
 * number. A value that is there but is no number, or a slope of 0, is refused: read as slope 1 / intercept 0, as it
 * once was, the stored values passed for Hounsfield units and the slice was classified on them.
 */
function rescaleValue (dataSet: dicomParser.DataSet, tag: string, name: string): number | undefined {
  const value = dataSet.string(tag, 0)
  if (value === undefined || value === '') return undefined
  const number = DECIMAL_STRING.test(value) ? Number(value) : NaN
  if (!Number.isFinite(number)) throw new CorruptDicomError(`its ${name} is not a number, so its pixel values cannot be read as Hounsfield units`)
  if (tag === TAG.rescaleSlope && number === 0) throw new CorruptDicomError(`its ${name} is 0, so its pixel values cannot be read as Hounsfield units`)
  return number
}

/** The first `count` values of a multi-valued DS element; fewer values than that count as absent (dicom-parser throws there). */
function numbers (dataSet: dicomParser.DataSet | undefined, tag: string, count: number): number[] | undefined {
  if (dataSet?.elements[tag] === undefined || (dataSet.string(tag) ?? '').split('\\').length < count) return undefined
  const list = Array.from({ length: count }, (_, i) => dataSet.floatString(tag, i))
  return list.every((v) => v !== undefined && Number.isFinite(v)) ? list as number[] : undefined
}

/** The first item's data set of a sequence, if the sequence and its item are there. */
function firstItem (dataSet: dicomParser.DataSet | undefined, tag: string): dicomParser.DataSet | undefined {
  return dataSet?.elements[tag]?.items?.[0]?.dataSet
}

/**
 * Where a frame's attribute is found: the frame's item of the Per-frame Functional Groups Sequence, then the Shared
 * Functional Groups Sequence (each holding the attribute in its macro's sequence), then the top level of the data
 * set (classic single- and multi-frame objects).
 */
function lookUp (groups: Array<dicomParser.DataSet | undefined>, top: dicomParser.DataSet, macro: string): dicomParser.DataSet {
  for (const group of groups) {
    const item = firstItem(group, macro)
    if (item !== undefined) return item
  }
  return top
}

function windowOf (dataSet: dicomParser.DataSet): DicomWindow | undefined {
  const center = finite(dataSet.floatString(TAG.windowCenter, 0))
  const width = finite(dataSet.floatString(TAG.windowWidth, 0))
  return center === undefined || width === undefined || !(width >= 1) ? undefined : { center, width }
}

/** The slice's normal: the cross product of the ImageOrientationPatient row and column directions. */
function normalOf (orientation: dicomParser.DataSet): number[] | undefined {
  const directions = numbers(orientation, TAG.imageOrientation, 6)
  if (directions === undefined) return undefined
  const [rx, ry, rz, cx, cy, cz] = directions
  return [ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx]
}

function slicePositionOf (position: dicomParser.DataSet, normal: number[] | undefined, top: dicomParser.DataSet): number | undefined {
  const origin = numbers(position, TAG.imagePosition, 3)
  if (origin === undefined || normal === undefined) return finite(top.floatString(TAG.sliceLocation))
  return origin[0] * normal[0] + origin[1] * normal[1] + origin[2] * normal[2]
}

/** The patient axis the normal lies closest to: x (left-right) sagittal, y (front-back) coronal, z (feet-head) axial. */
function planeOf (normal: number[] | undefined): SlicePlane | undefined {
  if (normal === undefined || normal.every((v) => v === 0)) return undefined
  const [x, y, z] = normal.map(Math.abs)
  return z >= x && z >= y ? 'axial' : y >= x ? 'coronal' : 'sagittal'
}

/**
 * Rescale, window and plane of every frame, from the functional groups of an enhanced object (per-frame first, then
 * shared) or from the top level of a classic one. `frames` has been checked against the frame budget by the caller.
 */
export function readFrameAttributes (dataSet: dicomParser.DataSet, frames: number): FrameAttributes[] {
  const shared = firstItem(dataSet, TAG.sharedFunctionalGroups)
  const perFrame = dataSet.elements[TAG.perFrameFunctionalGroups]?.items
  return Array.from({ length: frames }, (_, frame) => {
    const groups = [perFrame?.[frame]?.dataSet, shared]
    const rescale = lookUp(groups, dataSet, TAG.pixelValueTransformation)
    const slope = rescaleValue(rescale, TAG.rescaleSlope, SLOPE)
    const intercept = rescaleValue(rescale, TAG.rescaleIntercept, INTERCEPT)
    const normal = normalOf(lookUp(groups, dataSet, TAG.planeOrientation))
    const slicePosition = slicePositionOf(lookUp(groups, dataSet, TAG.planePosition), normal, dataSet)
    const plane = planeOf(normal)
    const window = windowOf(lookUp(groups, dataSet, TAG.frameVoiLut))
    const halfRescale = (slope === undefined) === (intercept === undefined)
      ? undefined
      : slope === undefined ? { missing: SLOPE, given: INTERCEPT } : { missing: INTERCEPT, given: SLOPE }
    return {
      rescaleSlope: slope ?? 1,
      rescaleIntercept: intercept ?? 0,
      hasRescale: slope !== undefined || intercept !== undefined,
      ...(halfRescale === undefined ? {} : { halfRescale }),
      ...(window === undefined ? {} : { window }),
      ...(slicePosition === undefined ? {} : { slicePosition }),
      ...(plane === undefined ? {} : { plane })
    }
  })
}
