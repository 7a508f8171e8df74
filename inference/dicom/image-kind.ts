import type { DicomImageHeader } from './dataset.js'
import { CorruptDicomError, UnsupportedDicomImageError, UnsupportedModalityError } from './errors.js'

/**
 * How an image's stored values become the model's grey levels:
 *   `hu`: a CT image: stored values -> Modality LUT (HU) -> the model's window -> grey;
 *   `display`: an image that is already what a screen shows (a secondary capture: a screenshot, a JPEG wrapped in
 *   DICOM): its 8-bit values are the grey levels, exactly as the same pixels sent as PNG.
 */
export type ImageKind = 'hu' | 'display'

/** The modalities classified when the caller names none (the service's DICOM_MODALITIES default). */
export const DEFAULT_MODALITIES: readonly string[] = ['CT']

/** Secondary Capture Image Storage and its multi-frame family (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.7, .7.1 to .7.4). */
const SECONDARY_CAPTURE = /^1\.2\.840\.10008\.5\.1\.4\.1\.1\.7(\.\d+)?$/
/** Modalities that say "a picture of something", not an acquisition: accepted only as display images. */
const DISPLAY_MODALITIES = new Set(['OT', 'SC'])

/**
 * An 8-bit image that is a secondary capture, or that has no rescale at all, carries display grey levels, not HU.
 * A 16-bit secondary capture of a CT (with its rescale) stays a CT image.
 */
function isDisplayImage (header: DicomImageHeader): boolean {
  if (header.bitsAllocated !== 8) return false
  const secondaryCapture = header.sopClassUid !== undefined && SECONDARY_CAPTURE.test(header.sopClassUid)
  return secondaryCapture || header.frameAttributes.every((frame) => !frame.hasRescale)
}

/**
 * Whether this service reads the image, and how: the modality must be one of `modalities` (OT and SC too for display
 * images); anything else is refused before any pixel is decoded, naming the modality. So is a localizer (ImageType
 * LOCALIZER: the scout or topogram that opens every CT study, a projection through the whole body, not a slice):
 * it is a CT image of the CT Image SOP class, and a PACS pushing a study sends it first, in a series of its own
 * whose conclusion would count towards the study's verdict. So is a sagittal slice (a reformat sent with the study):
 * the model card is for axial and coronal slices.
 */
export function imageKind (header: DicomImageHeader, modalities: readonly string[] = DEFAULT_MODALITIES): ImageKind {
  const display = isDisplayImage(header)
  const modality = header.modality
  const accepted = modality !== undefined && (modalities.includes(modality) || (display && DISPLAY_MODALITIES.has(modality)))
  if (!accepted) throw new UnsupportedModalityError(modality, modalities)
  if (header.imageType.includes('LOCALIZER')) {
    throw new UnsupportedDicomImageError('a localizer (ImageType LOCALIZER: a scout or topogram, a projection rather than a slice) is not classified')
  }
  if (header.frameAttributes.some((frame) => frame.plane === 'sagittal')) {
    throw new UnsupportedDicomImageError('a sagittal slice (from ImageOrientationPatient) is not classified: the model reads axial and coronal slices')
  }
  if (display) return 'display'
  // Slope and intercept are both Type 1 in a CT image (PS3.3 C.8.2.1) and in the Pixel Value Transformation
  // functional group: one without the other is a half-given Modality LUT, and reading the missing one as the identity
  // turned stored values into made-up HU. With neither, the identity is the standard's (PS3.4 N.2.1): see hospital.md.
  const half = header.frameAttributes.find((frame) => frame.halfRescale !== undefined)?.halfRescale
  if (half !== undefined) {
    throw new CorruptDicomError(`its ${half.missing} is missing beside its ${half.given}, so its pixel values cannot be read as Hounsfield units`)
  }
  return 'hu'
}
