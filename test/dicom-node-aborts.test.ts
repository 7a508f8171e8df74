import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { CT_SOURCES } from '../bench/ct-series.js'
import { loadConfig } from '../plugins/app/config.js'
import type { IntakeOutcome } from '../plugins/app/dicom-intake.js'
import { build } from './helper.js'
import { associatedPeer, commandSet, dcmtk, pDataPdu } from './helpers/dcmtk-clients.js'
import { until } from './helpers/fhir-stub.js'

// A peer that sends an instance and then resets its connection (a crash, a close with linger 0) leaves that instance
// being classified; an A-ABORT is not read before the answer (reading is paused), a reset is seen at once. The
// association's slot must stay taken until the instance is classified: freed at the reset, a peer looping "associate,
// send, reset" had as many instances in the node as it looped, however few slots it had.

const EXPLICIT_LITTLE_ENDIAN = '1.2.840.10008.1.2.1'
const file = await readFile(CT_SOURCES.ct1)
// The data set of a real CT slice, as C-STORE sends it: after the preamble, "DICM" and the File Meta group, whose
// (0002,0000) UL value, at 140, is the length of the rest of that group. In P-DATA-TF PDUs under the node's 64 KiB.
const dataSet = file.subarray(144 + file.readUInt32LE(140))
const fragments = Array.from({ length: Math.ceil(dataSet.length / 60_000) }, (_, i) => dataSet.subarray(i * 60_000, (i + 1) * 60_000))

/**
 * Every instance the node hands over waits until `open()`, then is classified as always: how many wait at once is how
 * many the node holds, whatever the speed of this machine.
 */
function gate (app: FastifyInstance): { handed: () => number, pending: () => number, peak: () => number, open: () => void, outcomes: IntakeOutcome[] } {
  let handed = 0
  let pending = 0
  let peak = 0
  let open = (): void => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  const outcomes: IntakeOutcome[] = []
  const receive = app.receiveInstance
  app.receiveInstance = async (...args) => {
    handed++
    peak = Math.max(peak, ++pending)
    try {
      await opened
      const outcome = await receive(...args)
      outcomes.push(outcome)
      return outcome
    } finally {
      pending--
    }
  }
  return { handed: () => handed, pending: () => pending, peak: () => peak, open, outcomes }
}

/** One round of the peer: associate as PACS; when accepted, send a CT slice and reset once the node has handed it over. The node's answer (0x02 accepted, 0x03 rejected). */
async function sendAndReset (port: number, held: ReturnType<typeof gate>, messageId: number): Promise<number> {
  const peer = await associatedPeer(port, 'KIDNEYSTONE', 'PACS', EXPLICIT_LITTLE_ENDIAN)
  if (peer.answer !== 0x02) { await peer.closed; return peer.answer }
  const before = held.handed()
  peer.socket.write(pDataPdu(commandSet(0x0001, messageId, { sopInstanceUid: `1.2.826.0.1.3680043.8.498.${messageId}` }), { command: true, last: true }))
  fragments.forEach((fragment, i) => peer.socket.write(pDataPdu(fragment, { command: false, last: i === fragments.length - 1 })))
  await until(() => held.handed() > before, `instance ${messageId} handed over for classification`)
  peer.socket.resetAndDestroy()
  await peer.closed
  return peer.answer
}

t.test('a peer looping "associate, send an instance, reset" never has more instances in the node than DICOM_MAX_ASSOCIATIONS_PER_AE; they are classified, then it is served again', async (t) => {
  const events: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { events.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, maxAssociations: 3, maxAssociationsPerAe: 2 } } })
  const port = app.dicomPort() as number
  const held = gate(app)

  const answers: number[] = []
  for (let round = 1; round <= 6; round++) answers.push(await sendAndReset(port, held, round))
  // Old code: 6 accepted (0x02), and 6 instances held at once by a sender of 2 slots.
  t.same(answers, [0x02, 0x02, 0x03, 0x03, 0x03, 0x03], 'two associations, then rejected while their instances are classified')
  t.equal(held.peak(), 2, 'never more instances held than the slots of the sender')
  t.match(events.filter((e) => e.event === 'association-rejected'), Array(4).fill({ callingAe: 'PACS', limit: 'per calling AE', max: 2, abandoned: 2 }),
    'each rejection logged with the slots held by associations whose peer is gone')
  const other = await dcmtk('echoscu', ['-aec', 'KIDNEYSTONE', '-aet', 'CT1', '127.0.0.1', String(port)])
  t.equal(other.code, 0, `another sender is still served: ${other.output}`)

  held.open()
  await until(() => held.pending() === 0, 'the held instances classified')
  t.same(held.outcomes.map((o) => o.classified), [true, true], 'the aborted associations\' instances classified')
  await new Promise((resolve) => setImmediate(resolve))
  const again = await associatedPeer(port, 'KIDNEYSTONE', 'PACS')
  t.equal(again.answer, 0x02, 'served again once its instances are classified')
  again.socket.destroy()
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /kidney_dicom_associations_refused_total\{calling_ae="unlisted",reason="limit_per_ae"\} 4\n/, 'each rejection counted')
})

t.test('closing the service waits for the instance of an association whose peer reset: it is classified before the model closes', async (t) => {
  const app = await build(t, { config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0 } } })
  const port = app.dicomPort() as number
  const held = gate(app)
  const classifier = app.model.get()
  const closeModel = classifier.close.bind(classifier)
  let heldAtModelClose: number | undefined
  classifier.close = async () => {
    heldAtModelClose = held.pending()
    held.open() // old code: the node did not wait, so the held instance would otherwise never be let through
    await closeModel()
  }
  t.equal(await sendAndReset(port, held, 1), 0x02)

  const closing = app.close()
  // The node has begun to close once it refuses connections; it waits for the held instance from then on.
  const refused = async (): Promise<boolean> => await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(false) }).on('error', () => resolve(true))
  })
  await until(refused, 'the DICOM node closed to new connections')
  held.open()
  await closing
  // Old code: 1, and the instance then failed (INTERNAL_ERROR: classified on a closed model).
  t.equal(heldAtModelClose, 0, 'no instance held when the model closes')
  t.same(held.outcomes.map((o) => o.classified), [true])
})
