import { ServiceError } from '../inference/errors.js'

/**
 * The SOP classes classified: CT images, and secondary captures (a CT exported as a picture). Everything else a
 * PACS pushes with a study (structured reports, presentation states, key objects, other modalities' images) is
 * refused per instance with 0x0122 / UNSUPPORTED_SOP_CLASS, never decoded.
 */
export const CLASSIFIED_SOP_CLASSES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.10008.5.1.4.1.1.2', 'CT Image Storage'],
  ['1.2.840.10008.5.1.4.1.1.2.1', 'Enhanced CT Image Storage'],
  ['1.2.840.10008.5.1.4.1.1.2.2', 'Legacy Converted Enhanced CT Image Storage'],
  ['1.2.840.10008.5.1.4.1.1.7', 'Secondary Capture Image Storage'],
  ['1.2.840.10008.5.1.4.1.1.7.2', 'Multi-frame Grayscale Byte Secondary Capture Image Storage'],
  ['1.2.840.10008.5.1.4.1.1.7.3', 'Multi-frame Grayscale Word Secondary Capture Image Storage']
])

export class UnsupportedSopClassError extends ServiceError {
  constructor (sopClassUid: string) {
    super('UNSUPPORTED_SOP_CLASS', 422, `SOP class ${sopClassUid} is not classified: only CT images (and secondary captures of CT) are.`)
  }
}
