import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import t from 'tap'
import { loadConfig } from '../plugins/app/config.js'
import { build } from './helper.js'
import { associatedPeer, associateRequest, dcmtk } from './helpers/dcmtk-clients.js'

// DICOM_MAX_ASSOCIATIONS_PER_AE with dcmtk's echoscu (see test/dicom-node.test.ts): one sender cannot take every slot.

t.test('DICOM_MAX_ASSOCIATIONS_PER_AE: two of DICOM_MAX_ASSOCIATIONS kept for others by default, all of them for a sole allowed AE; above the total stops start-up when the node is on', async (t) => {
  const perAe = (env: NodeJS.ProcessEnv): number => loadConfig(env).dicomNode.maxAssociationsPerAe
  t.equal(perAe({}), 6)
  t.same(['1', '2', '3', '4'].map((total) => perAe({ DICOM_MAX_ASSOCIATIONS: total })), [1, 1, 1, 2], 'never below 1')
  t.equal(perAe({ DICOM_ALLOWED_AES: 'PACS' }), 8, 'no other sender to keep slots for')
  t.equal(perAe({ DICOM_ALLOWED_AES: 'PACS, CT1' }), 6)
  t.equal(perAe({ DICOM_MAX_ASSOCIATIONS_PER_AE: '8' }), 8)
  t.throws(() => loadConfig({ DICOM_PORT: '11112', DICOM_MAX_ASSOCIATIONS_PER_AE: '9' }),
    { message: 'Invalid environment variable DICOM_MAX_ASSOCIATIONS_PER_AE=9: must not exceed DICOM_MAX_ASSOCIATIONS (8)' })
  t.equal(perAe({ DICOM_MAX_ASSOCIATIONS_PER_AE: '9' }), 9, 'with the node off (no DICOM_PORT) a stale limit stops nothing')
  for (const value of ['0', 'two']) t.throws(() => loadConfig({ DICOM_MAX_ASSOCIATIONS_PER_AE: value }), /^Invalid environment variable DICOM_MAX_ASSOCIATIONS_PER_AE=/, value)
})

t.test('per calling AE: a second association from an AE holding its one is refused (transient) while another AE is served; once released, the AE is served again', async (t) => {
  const events: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { events.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  const app = await build(t, { logger: { level: 'info', stream }, config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, maxAssociations: 2, maxAssociationsPerAe: 1 } } })
  const port = app.dicomPort() as number
  const echo = async (callingAe: string): Promise<{ code: number, output: string }> =>
    await dcmtk('echoscu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', callingAe, '127.0.0.1', String(port)])
  /** An association from `callingAe` held open (a raw peer associates and sends nothing more), as the total-limit test does. */
  const hold = async (callingAe: string): Promise<Awaited<ReturnType<typeof associatedPeer>>> => {
    const peer = await associatedPeer(port, 'KIDNEYSTONE', callingAe)
    t.equal(peer.answer, 0x02, `${callingAe} held open (A-ASSOCIATE-AC)`)
    return peer
  }
  const rejected = (): Array<Record<string, unknown>> => events.filter((e) => e.event === 'association-rejected')

  const pacs = await hold('PACS')
  const again = await echo('PACS')
  t.not(again.code, 0)
  t.match(again.output, /Rejected Transient/)
  t.match(again.output, /Local Limit Exceeded/)
  t.match(rejected(), [{ callingAe: 'PACS', reason: 'localLimitExceeded', limit: 'per calling AE', max: 1 }], 'the log line names the AE and the limit')
  const other = await echo('MODALITY')
  t.equal(other.code, 0, other.output)
  t.match(other.output, /Received Echo Response \(Success\)/)

  // Both slots held, by two AEs: a third AE meets the total limit, and its log line says so.
  const modality = await hold('MODALITY')
  t.match((await echo('CT2')).output, /Local Limit Exceeded/)
  t.match(rejected().at(-1), { callingAe: 'CT2', limit: 'total', max: 2 })
  modality.socket.destroy()
  await modality.closed

  pacs.socket.write(Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])) // A-RELEASE-RQ
  await pacs.closed
  t.equal(pacs.received().at(-10), 0x06, 'released (A-RELEASE-RP)')
  const after = await echo('PACS')
  t.equal(after.code, 0, after.output)
  t.equal(rejected().length, 2, 'nothing else refused')
})

t.test('peers that never close their side after a rejection or a release do not keep connections: another AE is served after twice DICOM_MAX_ASSOCIATIONS of them', async (t) => {
  const app = await build(t, { config: { dicomNode: { ...loadConfig({}).dicomNode, port: 0, maxAssociations: 2, maxAssociationsPerAe: 2 } } })
  const port = app.dicomPort() as number
  /** A peer that keeps its side open after the node's last PDU (allowHalfOpen), resolved once that PDU and the node's FIN came. */
  const stubborn = async (request: Buffer, then?: Buffer): Promise<{ socket: Socket, received: Buffer }> => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    socket.on('error', () => {})
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      if (then !== undefined && chunks.length === 1) socket.write(then)
    })
    const ended = once(socket, 'end')
    socket.write(request)
    await ended
    t.teardown(() => socket.destroy())
    return { socket, received: Buffer.concat(chunks) }
  }
  const release = Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])
  const held = [
    await stubborn(associateRequest('NOT-US', 'PEER1')),
    await stubborn(associateRequest('NOT-US', 'PEER2')),
    await stubborn(associateRequest('KIDNEYSTONE', 'PEER3'), release),
    await stubborn(associateRequest('KIDNEYSTONE', 'PEER4'), release)
  ]
  t.same(held.map(({ received }) => received[0]), [0x03, 0x03, 0x02, 0x02], 'two rejected (A-ASSOCIATE-RJ), two accepted')
  t.same(held.slice(2).map(({ received }) => received.at(-10)), [0x06, 0x06], 'and released (A-RELEASE-RP)')
  const echo = await dcmtk('echoscu', ['-v', '-aec', 'KIDNEYSTONE', '-aet', 'PACS', '127.0.0.1', String(port)])
  t.equal(echo.code, 0, echo.output)
  t.match(echo.output, /Received Echo Response \(Success\)/)
})
