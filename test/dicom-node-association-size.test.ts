import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { writeCtSeries } from '../bench/ct-series.js'
import { loadConfig } from '../plugins/app/config.js'
import { build } from './helper.js'
import { dcmtk } from './helpers/dcmtk-clients.js'

// The A-ASSOCIATE-RQ has no size limit in DICOM (a Maximum Length bounds P-DATA-TF PDUs only): a sender proposing
// every storage SOP class it may send, each with every transfer syntax it can encode, asks with one PDU of its own
// size. dcmtk's storescu does, given a profile of such presentation contexts (--config-file).

const work = await mkdtemp(join(tmpdir(), 'kidney-association-size-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))

const TRANSFER_SYNTAXES = [
  '1.2.840.10008.1.2.1', '1.2.840.10008.1.2', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5',
  '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80',
  '1.2.840.10008.1.2.4.81', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93',
  '1.2.840.10008.1.2.4.100', '1.2.840.10008.1.2.4.101', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'
]

/** A storescu profile of 128 presentation contexts (the most an association has), CT first, each with all of TRANSFER_SYNTAXES. */
async function profile (): Promise<string> {
  const file = join(work, 'storescu.cfg')
  const contexts = ['CTImageStorage', ...Array.from({ length: 127 }, (_, i) => `1.2.840.10008.5.1.4.1.1.${1000 + i}`)]
  await writeFile(file, [
    '[[TransferSyntaxes]]', '[All]', ...TRANSFER_SYNTAXES.map((uid, i) => `TransferSyntax${i + 1} = ${uid}`),
    '[[PresentationContexts]]', '[Every]', ...contexts.map((sopClass, i) => `PresentationContext${i + 1} = ${sopClass}\\All`),
    '[[Profiles]]', '[Wide]', 'PresentationContexts = Every', 'TransferSyntaxes = All', ''
  ].join('\n'))
  return file
}

t.test('storescu proposing 128 presentation contexts of 20 transfer syntaxes each (a 70 KiB A-ASSOCIATE-RQ) is accepted and its CT slice stored', async (t) => {
  const app = await build(t, { config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0 } } })
  const series = await writeCtSeries(join(work, 'series'), { slices: 1 })
  // On the old code the node took no PDU over 64 KiB before an association: A-ABORT, "Peer aborted Association".
  const pushed = await dcmtk('storescu', ['-v', '--config-file', await profile(), 'Wide', '-aec', 'KIDNEYSTONE', '127.0.0.1', String(app.dicomPort()), series.files[0]])
  t.equal(pushed.code, 0, pushed.output.slice(-2000))
  t.match(pushed.output, /Received Store Response \(Success\)/)
})
