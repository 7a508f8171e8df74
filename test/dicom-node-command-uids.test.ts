import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { RECORDS_OFF } from './helper.js'
import { associatedPeer, commandSet, pDataPdu } from './helpers/dcmtk-clients.js'
import { until } from './helpers/fhir-stub.js'
import { emptyPGliteDataDir } from './helpers/pglite-template.js'
import { recordsApp } from './records/suite.js'

// What a C-STORE command says of its instance (AffectedSOPClassUID, AffectedSOPInstanceUID) fills the keys its data set
// lacks (dicom-node/instance-keys.ts), and a refused instance is recorded with them so its study counts it. The command
// comes from the peer as it is: a UID there that is none (a NUL, a control character) must not reach the records.

const work = await mkdtemp(join(tmpdir(), 'kidney-dicom-command-uids-'))
t.teardown(async () => await rm(work, { recursive: true, force: true }))
const app = await recordsApp(t, { ...RECORDS_OFF, store: 'pglite', dataDir: await emptyPGliteDataDir(join(work, 'data')) }, {
  dicomNode: { ...loadConfig().dicomNode, port: 0 }
})

const MR_IMAGE = '1.2.840.10008.5.1.4.1.1.4'
const STUDY = '1.2.826.0.1.3680043.8.498.777'
/** (0000,0900) Status = 0122 (SOP class not supported), as the node writes it in its C-STORE-RSP. */
const REFUSED_SOP_CLASS = Buffer.from([0, 0, 0, 9, 2, 0, 0, 0, 0x22, 0x01])

/** A data set (implicit VR little endian) of an MR instance of STUDY without a SOP Instance UID: the command gives it. */
function mrDataSet (): Buffer {
  const element = (group: number, tag: number, text: string): Buffer => {
    const value = Buffer.from(text.length % 2 === 0 ? text : `${text}\0`, 'latin1')
    const head = Buffer.alloc(8)
    head.writeUInt16LE(group, 0)
    head.writeUInt16LE(tag, 2)
    head.writeUInt32LE(value.length, 4)
    return Buffer.concat([head, value])
  }
  return Buffer.concat([element(0x0008, 0x0016, MR_IMAGE), element(0x0020, 0x000d, STUDY), element(0x0020, 0x000e, `${STUDY}.1`)])
}

t.test('a refused instance whose command names it by no UID is recorded without one; its study counts it', async (t) => {
  const peer = await associatedPeer(app.dicomPort() as number, 'KIDNEYSTONE', 'PACS1')
  t.equal(peer.answer, 0x02, 'associated')
  // The first names its instance '\0\x01', the second by a UID: both MR, refused, and recorded one after the other.
  for (const [id, sopInstanceUid] of [[1, '\0\x01'], [2, `${STUDY}.1.2`]] as const) {
    peer.socket.write(pDataPdu(commandSet(0x0001, id, { sopClassUid: MR_IMAGE, sopInstanceUid }), { command: true, last: true }))
    peer.socket.write(pDataPdu(mrDataSet(), { command: false, last: true }))
  }
  const answers = (): number => peer.received().toString('latin1').split(REFUSED_SOP_CLASS.toString('latin1')).length - 1
  await until(() => answers() === 2, 'both C-STORE-RSP')
  peer.socket.destroy()
  const failures = async (): Promise<Array<{ code: string, sopInstanceUid?: string }>> => {
    const study = await app.inject({ method: 'GET', url: `/studies/${STUDY}` })
    return study.statusCode === 200 ? study.json().series[0].failures : []
  }
  // The refusals are written in the background, in order: once the second shows, the first would have.
  await until(async () => (await failures()).some((f) => f.sopInstanceUid === `${STUDY}.1.2`), 'the second refusal recorded')
  // Old code: only the second; the first's write failed (SQLSTATE 22P05), an error logged and counted as a lost record.
  t.same((await failures()).map((f) => [f.code, f.sopInstanceUid]), [['UNSUPPORTED_SOP_CLASS', undefined], ['UNSUPPORTED_SOP_CLASS', `${STUDY}.1.2`]])
})
