import { deflateRawSync } from 'node:zlib'
import t from 'tap'
import { KEYS_PREFIX_BYTES, readEachInstanceKeys, readInstanceKeys } from '../dicom-node/instance-keys.js'
import { DEFLATED_EXPLICIT_LITTLE_ENDIAN, element, imageAttributes, part10Header, pixelData, SYNTHETIC_UIDS, text, writeDicom, type SyntheticDicom } from './helpers/dicom-writer.js'

// readInstanceKeys runs on the event loop for every STOW-RS part, every DICOM node instance and every POST
// /predict/batch file. dicom-parser, given no inflater, inflated a deflated data set whole there (zlib.inflateRawSync):
// the hostile corpus's 20 MiB deflate bombs inflate to gigabytes. And its cost is per element: a header flooded with
// millions of empty elements held the event loop for seconds. Only the elements up to SeriesInstanceUID (0020,000E),
// within KEYS_PREFIX_BYTES of the file or of its inflated data set, are parsed now.

const small: SyntheticDicom = { rows: 4, columns: 4, bitsAllocated: 16, signed: true, rescaleSlope: 1, rescaleIntercept: -1024, values: new Array(16).fill(1000) }
const EXPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'

/** `count` empty private elements (8 bytes each) of group `group`, the hostile corpus's element flood. */
function flood (group: number, count: number): Buffer {
  const bytes = Buffer.alloc(count * 8)
  for (let i = 0; i < count; i++) {
    bytes.writeUInt16LE(group, i * 8)
    bytes.writeUInt16LE(0x1000 + (i % 0xf000), i * 8 + 2)
    bytes.write('LO', i * 8 + 4, 'latin1')
  }
  return bytes
}

/** A deflated file whose data set opens with `junk` bytes of a private element, before every key. */
function deflatedAfterJunk (junk: number): Buffer {
  const dataSet = Buffer.concat([element(0x0007, 0x0010, 'OB', Buffer.alloc(junk)), imageAttributes(small), pixelData(small)])
  return Buffer.concat([part10Header(DEFLATED_EXPLICIT_LITTLE_ENDIAN), deflateRawSync(dataSet)])
}

t.test('a deflated data set is inflated no further than KEYS_PREFIX_BYTES to read its keys', async (t) => {
  t.match(readInstanceKeys(deflatedAfterJunk(1024)), SYNTHETIC_UIDS, 'keys behind a kilobyte are read')
  // Under the former bound (MAX_HEADER_BYTES, 8 MiB) both were read: all 1 MiB was inflated.
  const far = readInstanceKeys(deflatedAfterJunk(2 * KEYS_PREFIX_BYTES))
  t.equal(far.studyInstanceUid, undefined, 'keys past KEYS_PREFIX_BYTES are not reached')
  t.equal(far.seriesInstanceUid, undefined)
})

t.test('nothing after SeriesInstanceUID is parsed: an element flood there is never read', async (t) => {
  // The image attributes (groups 0008 to 0028), then 100k empty elements of group 0029, then an element that only a
  // parse through the flood reaches: a second StudyInstanceUID, out of order, which would replace the first.
  const dataSet = Buffer.concat([imageAttributes(small), flood(0x0029, 100_000), element(0x0020, 0x000d, 'UI', text('1.2.3.999')), pixelData(small)])
  const keys = readInstanceKeys(Buffer.concat([part10Header(EXPLICIT_LITTLE_ENDIAN), dataSet]))
  // On the old code (parsed until the Pixel Data) the studyInstanceUid was 1.2.3.999.
  t.same(keys, { sopClassUid: '1.2.840.10008.5.1.4.1.1.2', ...SYNTHETIC_UIDS }, 'the keys before the flood, and only those')
})

t.test('an element flood before the keys is parsed no further than KEYS_PREFIX_BYTES', async (t) => {
  const flooded = (count: number): Buffer =>
    Buffer.concat([part10Header(EXPLICIT_LITTLE_ENDIAN), flood(0x0007, count), imageAttributes(small), pixelData(small)])
  t.match(readInstanceKeys(flooded(1000)), SYNTHETIC_UIDS, 'keys behind 1000 elements (8 kB) are read')
  // Past the bound the data set gives no keys; the File Meta Information still names the SOP class and instance.
  const far = readInstanceKeys(flooded(KEYS_PREFIX_BYTES / 8))
  t.same(far, { sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: SYNTHETIC_UIDS.sopInstanceUid, studyInstanceUid: undefined, seriesInstanceUid: undefined },
    'keys past KEYS_PREFIX_BYTES are not reached (the old code parsed all 32k elements and read them)')
})

t.test('the files of one request are read one per turn of the event loop', async (t) => {
  // Each file is bounded, but STOW-RS takes up to 1000 of them. A callback queued before the reading starts runs
  // after the first file and before the second, here one that blanks the second file.
  const [first, second] = [writeDicom(small), writeDicom(small)]
  setImmediate(() => second.fill(0))
  const [firstKeys, secondKeys] = await readEachInstanceKeys([first, second])
  t.match(firstKeys, SYNTHETIC_UIDS, 'the first file is read at once')
  // Read in one synchronous map, as stow.ts and batch-predictor.ts did, the second file still had its keys.
  t.same(secondKeys, { sopClassUid: undefined, sopInstanceUid: undefined, studyInstanceUid: undefined, seriesInstanceUid: undefined },
    'the second is read after the event loop ran what was waiting')
})
