import { deflateRawSync } from 'node:zlib'
import t from 'tap'
import { readInstanceKeys } from '../dicom-node/instance-keys.js'
import { MAX_HEADER_BYTES } from '../inference/dicom/dataset.js'
import { DEFLATED_EXPLICIT_LITTLE_ENDIAN, element, imageAttributes, part10Header, pixelData, SYNTHETIC_UIDS, type SyntheticDicom } from './helpers/dicom-writer.js'

// readInstanceKeys runs on the event loop for every STOW-RS part, every DICOM node instance and every POST
// /predict/batch file. dicom-parser, given no inflater, inflated a deflated data set whole there (zlib.inflateRawSync):
// the hostile corpus's 20 MiB deflate bombs inflate to gigabytes. Only MAX_HEADER_BYTES are inflated now, what the
// decoder itself allows before the pixels, and the keys come from that.

const small: SyntheticDicom = { rows: 4, columns: 4, bitsAllocated: 16, signed: true, rescaleSlope: 1, rescaleIntercept: -1024, values: new Array(16).fill(1000) }

/** A deflated file whose data set opens with `junk` bytes of a private element, before every key. */
function deflatedAfterJunk (junk: number): Buffer {
  const dataSet = Buffer.concat([element(0x0007, 0x0010, 'OB', Buffer.alloc(junk)), imageAttributes(small), pixelData(small)])
  return Buffer.concat([part10Header(DEFLATED_EXPLICIT_LITTLE_ENDIAN), deflateRawSync(dataSet)])
}

t.test('a deflated data set is inflated no further than MAX_HEADER_BYTES to read its keys', async (t) => {
  t.match(readInstanceKeys(deflatedAfterJunk(1024)), SYNTHETIC_UIDS, 'keys behind a kilobyte are read')
  // On the old code both were read: all 16 MiB were inflated (and so would be the 4 GiB of a bomb).
  const far = readInstanceKeys(deflatedAfterJunk(2 * MAX_HEADER_BYTES))
  t.equal(far.studyInstanceUid, undefined, 'keys past MAX_HEADER_BYTES are not reached')
  t.equal(far.seriesInstanceUid, undefined)
})
