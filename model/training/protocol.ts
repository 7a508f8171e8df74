/**
 * `npx tsx model/training/protocol.ts`: writes model/training/series-protocol.csv, the contrast protocol of every
 * ct-kidney and ct-kidney-other series, and prints how far a measurement agrees with it.
 *
 * The label is read by eye, per series, on montages of each series' slices (aorta and renal cortex bright against
 * muscle = contrast; aorta and kidneys at soft-tissue grey = non-contrast). Every series of `../shared` follows
 * its class: ct-kidney Normal series are contrast-enhanced (axial and coronal), ct-kidney Stone series are
 * non-contrast, ct-kidney-other cyst series non-contrast and tumour series contrast-enhanced; no series differed
 * from that when read. The cross-check is measured on every axial series: `kidneyEnhancement`
 * (model/data/kidney-location.ts), the median over up to 12 evenly spaced slices. It is an imperfect measure
 * (windows placed from the spine, stones in the window raise it), so the disagreements it prints were read again
 * by eye; the eye label stands. yildirim-stones is non-contrast by its source (Yildirim et al. 2021).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { decodeForModel } from '../../inference/preprocess.js'
import { rocAuc } from '../evaluation/metrics.js'
import { kidneyEnhancement, locateKidneys } from '../data/kidney-location.js'
import { PROTOCOL_FILE, readAllSlices, sliceFile, type Finding, type Protocol, type SliceEntry } from '../data/slices.js'
import { TRAINING_SPEC } from './training-input.js'

const PROTOCOL_OF: Record<Finding, Protocol> = { normal: 'contrast', stone: 'non-contrast', cyst: 'non-contrast', tumor: 'contrast' }
const SLICES_MEASURED = 12
/** Index at or above which the measurement calls a series contrast-enhanced (12 grey levels, about 19 HU at a 400 HU window). */
const ENHANCED_FROM = 12

async function enhancementOf (members: SliceEntry[]): Promise<number | undefined> {
  const step = Math.max(1, Math.floor(members.length / SLICES_MEASURED))
  const values: number[] = []
  for (const entry of members.filter((_, i) => i % step === 0).slice(0, SLICES_MEASURED)) {
    const pixels = await decodeForModel(await readFile(sliceFile(entry)), TRAINING_SPEC, { channels: 1, maxPixels: 50_000_000 })
    const image = { pixels, width: TRAINING_SPEC.input.width, height: TRAINING_SPEC.input.height }
    const location = locateKidneys(image)
    if (location !== undefined) values.push(kidneyEnhancement(image, location))
  }
  values.sort((a, b) => a - b)
  return values.length === 0 ? undefined : values[Math.floor((values.length - 1) / 2)]
}

const series = new Map<string, SliceEntry[]>()
for (const entry of await readAllSlices()) series.set(entry.group, [...(series.get(entry.group) ?? []), entry])

const rows = ['series,dataset,finding,split,plane,slices,protocol,kidney_enhancement,measurement_agrees']
const measured: Array<{ group: string, protocol: Protocol, index: number }> = []
for (const [group, members] of [...series.entries()].sort(([a], [b]) => a.localeCompare(b))) {
  const { dataset, finding, split, plane } = members[0]
  const protocol = PROTOCOL_OF[finding]
  const index = plane === 'axial' ? await enhancementOf(members) : undefined
  if (index !== undefined) measured.push({ group, protocol, index })
  const agrees = index === undefined ? '' : String((index >= ENHANCED_FROM) === (protocol === 'contrast'))
  rows.push([group, dataset, finding, split, plane, members.length, protocol, index ?? '', agrees].join(','))
}
await writeFile(PROTOCOL_FILE, rows.join('\n') + '\n')

const auc = rocAuc(measured.map((m) => ({ probability: m.index, label: m.protocol === 'contrast' ? 1 : 0 })))
const disagreeing = measured.filter((m) => (m.index >= ENHANCED_FROM) !== (m.protocol === 'contrast'))
console.log(`wrote ${PROTOCOL_FILE}: ${series.size} series; kidney enhancement measured on ${measured.length} axial series, ` +
  `AUC ${auc.toFixed(3)} against the eye labels, ${measured.length - disagreeing.length} of ${measured.length} agree at >= ${ENHANCED_FROM}; ` +
  `disagreeing (re-read by eye): ${disagreeing.map((m) => `${m.group} ${m.protocol} ${m.index}`).join(', ')}`)
