import { createKidneyStoneClient, predictionOverlay, predictSlice, studyResult, type ClientAuth, type KidneyStoneClient, type Prediction } from '../../client/index.js'
import { orderSlices } from '../../inference/series-conclusion.js'
import type { Entry } from './entry.js'
import { download, fhirBundle, resultsCsv } from './exports.js'
import { fromDrop, fromInput, isCandidate, type PickedFile } from './files.js'
import { errorCard, groupKey, groupSection, pendingCard, resultCard, showOverlay, showSeriesConclusion, type Group } from './render.js'

/** Files classified at the same time: the service micro-batches them; more would only queue there. */
const CONCURRENCY = 2

const byId = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T

const entries: Entry[] = []
const groups = new Map<string, Group>()
let queue: Entry[] = []
let running = 0
/** Hidden files and DICOMDIR indexes left out of the picked or dropped files. */
let skipped = 0

/** The credentials live in the two inputs only: read at each request, never written anywhere. */
function client (): KidneyStoneClient {
  const auth: ClientAuth = {}
  const apiKey = byId<HTMLInputElement>('api-key').value.trim()
  const token = byId<HTMLInputElement>('token').value.trim()
  if (apiKey !== '') auth.apiKey = apiKey
  if (token !== '') auth.token = token
  return createKidneyStoneClient(window.location.origin, auth)
}

function errorOf (error: unknown): NonNullable<Entry['error']> {
  return { code: 'NETWORK_ERROR', message: `The service could not be reached (${error instanceof Error ? error.message : String(error)}).` }
}

function updateProgress (): void {
  const done = entries.filter((entry) => entry.prediction !== undefined || entry.error !== undefined)
  const failed = done.filter((entry) => entry.error !== undefined).length
  const waiting = entries.length - done.length
  const skips = skipped > 0 ? ` ${skipped} hidden or DICOMDIR file(s) skipped.` : ''
  byId('progress').textContent = entries.length === 0
    ? skips.trim()
    : `${done.length} of ${entries.length} file(s) done: ${done.length - failed} classified, ${failed} not classified${waiting > 0 ? `, ${waiting} in progress` : ''}.${skips}`
  const idle = waiting === 0 && entries.length > 0
  byId<HTMLButtonElement>('export-csv').disabled = !idle
  byId<HTMLButtonElement>('export-fhir').disabled = !idle || !entries.some((entry) => entry.prediction !== undefined)
  byId<HTMLButtonElement>('clear').disabled = !idle
}

function groupFor (entry: Entry): Group {
  const key = groupKey(entry.prediction)
  let group = groups.get(key)
  if (group === undefined) {
    group = groupSection(key, entry.prediction?.dicom?.studyInstanceUid)
    groups.set(key, group)
    byId('results').append(group.section)
  }
  return group
}

/**
 * A card among its group's in slice order, as GET /studies lists the series' slices (orderSlices: position, then
 * InstanceNumber), images without a series in the order they were picked. Answers arrive two at a time in either
 * order: appended as they came, 3.dcm stood before 2.dcm under a conclusion that speaks of slices in slice order.
 */
function placeInSliceOrder (entry: Entry): void {
  const key = groupKey(entry.prediction)
  const ordered = orderSlices(entries.filter((e) => e.prediction !== undefined && groupKey(e.prediction) === key)
    .map((e) => ({ entry: e, slicePosition: e.prediction?.dicom?.slicePosition, instanceNumber: e.prediction?.dicom?.instanceNumber })))
  const next = ordered[ordered.findIndex((slice) => slice.entry === entry) + 1]
  groupFor(entry).cards.insertBefore(entry.card, next?.entry.card ?? null)
}

/**
 * The service's series conclusions of one study (GET /studies/{uid}), asked once all the files are answered (and
 * again after each later upload): the page shows them and computes nothing clinical itself.
 */
async function refreshStudy (api: KidneyStoneClient, studyInstanceUid: string): Promise<void> {
  const slots = [...groups].flatMap(([seriesUid, group]) =>
    group.conclusion !== undefined && entries.some((e) => e.prediction?.dicom?.seriesInstanceUid === seriesUid && e.prediction.dicom.studyInstanceUid === studyInstanceUid)
      ? [{ seriesUid, slot: group.conclusion }]
      : [])
  try {
    // The files this page sent: with a records:read-all credential the study as a whole is its owner's (the first
    // classifying caller, of STUDY_OWNERS when set), where a series of these files under another sender's study was
    // 'not held for you', or showed that sender's slices.
    const { data, error, response } = await studyResult(api, studyInstanceUid, { mine: true })
    for (const { seriesUid, slot } of slots) {
      const series = data?.series.find((s) => s.seriesInstanceUid === seriesUid)
      showSeriesConclusion(slot, series ?? { error: data === undefined
        ? `${error?.message ?? response.statusText} (${error?.code ?? `HTTP ${response.status}`})`
        : 'the service holds no classified instance of this series for you' })
    }
  } catch (error) {
    for (const { slot } of slots) showSeriesConclusion(slot, { error: errorOf(error).message })
  }
}

async function readAsDataUrl (blob: Blob): Promise<string> {
  return await new Promise((resolve, reject) => {
    const reader = new FileReader()
    reader.onload = () => resolve(reader.result as string)
    reader.onerror = () => reject(reader.error)
    reader.readAsDataURL(blob)
  })
}

async function classify (entry: Entry): Promise<void> {
  const api = client()
  try {
    const { data, error, response } = await predictSlice(api, { name: entry.path.split('/').at(-1) ?? entry.path, bytes: entry.file })
    if (data !== undefined) entry.prediction = data
    else entry.error = { code: error?.code ?? `HTTP_${response.status}`, message: error?.message ?? response.statusText, statusCode: response.status }
  } catch (error) {
    entry.error = errorOf(error)
  }
  const placed = entry.prediction === undefined
    ? { card: errorCard(entry.path, entry.error ?? errorOf('no answer')), overlay: undefined }
    : resultCard(entry.path, entry.prediction)
  entry.card.remove()
  entry.card = placed.card
  if (entry.prediction !== undefined) placeInSliceOrder(entry)
  else byId('results').prepend(placed.card)
  updateProgress()
  // once every file is answered, the service's conclusions of the studies seen (one request per study, not per slice)
  if (entries.every((e) => e.prediction !== undefined || e.error !== undefined)) {
    const studies = new Set(entries.flatMap((e) => e.prediction?.dicom?.studyInstanceUid ?? []))
    await Promise.all([...studies].map(async (study) => await refreshStudy(api, study)))
  }
  if (entry.prediction === undefined || placed.overlay === undefined) return
  whenVisible(placed.overlay, () => { if (entry.prediction !== undefined) void loadOverlay(api, entry.prediction, placed.overlay as HTMLElement, true) })
}

/**
 * Overlays are asked for once their card comes near the screen: a folder of a few hundred slices then costs the
 * service (and the page's memory) only the overlays someone looks at.
 */
const waiting = new Map<Element, () => void>()
const nearScreen = new IntersectionObserver((seen) => {
  for (const { target, isIntersecting } of seen) {
    const load = waiting.get(target)
    if (!isIntersecting || load === undefined) continue
    waiting.delete(target)
    nearScreen.unobserve(target)
    load()
  }
}, { rootMargin: '400px' })

function whenVisible (slot: HTMLElement, load: () => void): void {
  waiting.set(slot, load)
  nearScreen.observe(slot)
}

/** Fetches the overlay (with or without the heatmap) into its slot; the slot's button asks for the other one. */
async function loadOverlay (api: KidneyStoneClient, prediction: Prediction, slot: HTMLElement, heatmap: boolean): Promise<void> {
  const toggle = (): void => { void loadOverlay(api, prediction, slot, !heatmap) }
  try {
    const overlay = await predictionOverlay(api, prediction.id, heatmap)
    showOverlay(slot, prediction, overlay.data !== undefined
      ? { dataUrl: await readAsDataUrl(overlay.data), heatmap, toggle }
      : { error: `${overlay.error?.message ?? overlay.response.statusText} (${overlay.error?.code ?? `HTTP ${overlay.response.status}`})` })
  } catch (error) {
    showOverlay(slot, prediction, { error: errorOf(error).message })
  }
}

function pump (): void {
  while (running < CONCURRENCY && queue.length > 0) {
    const entry = queue.shift() as Entry
    running++
    void classify(entry).finally(() => { running--; pump() })
  }
}

function add (picked: PickedFile[]): void {
  const files = picked.filter((file) => isCandidate(file.path))
  skipped += picked.length - files.length
  const pending = byId('results')
  for (const { file, path } of files) {
    const entry: Entry = { file, path, card: pendingCard(path) }
    entries.push(entry)
    queue.push(entry)
    pending.append(entry.card)
  }
  updateProgress()
  pump()
}

async function exportFhir (): Promise<void> {
  const status = byId('export-status')
  status.textContent = 'Collecting the FHIR reports…'
  try {
    download('kidney-stone-reports.fhir.json', 'application/fhir+json', JSON.stringify(await fhirBundle(client(), entries), null, 2))
    status.textContent = 'FHIR reports exported.'
  } catch (error) {
    status.textContent = `The FHIR reports could not be exported: ${(error as Error).message}`
  }
}

async function showStatus (): Promise<void> {
  const status = byId('service-status')
  try {
    const { data, response } = await client().GET('/')
    status.textContent = data !== undefined
      ? `Service ${data.service} ${data.version}; model ${data.model === null ? 'not loaded' : `${data.model.name} ${data.model.version}`} (${data.status}).`
      : response.status === 401
        ? 'The service asks for credentials: type an API key or a bearer token below.'
        : `The service did not give its status (HTTP ${response.status}).`
  } catch (error) {
    status.textContent = errorOf(error).message
  }
}

function start (): void {
  const zone = byId('drop-zone')
  for (const id of ['pick-files', 'pick-folder']) {
    const input = byId<HTMLInputElement>(id)
    input.addEventListener('change', () => { add(fromInput(input)); input.value = '' })
  }
  zone.addEventListener('dragover', (event) => { event.preventDefault(); zone.classList.add('dragging') })
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'))
  zone.addEventListener('drop', (event) => {
    event.preventDefault()
    zone.classList.remove('dragging')
    if (event.dataTransfer !== null) void fromDrop(event.dataTransfer).then(add)
  })
  byId('credentials').addEventListener('submit', (event) => event.preventDefault())
  for (const id of ['api-key', 'token']) byId(id).addEventListener('change', () => { void showStatus() })
  byId('export-csv').addEventListener('click', () => download('kidney-stone-results.csv', 'text/csv', resultsCsv(entries)))
  byId('export-fhir').addEventListener('click', () => { void exportFhir() })
  byId('clear').addEventListener('click', () => {
    entries.length = 0
    queue = []
    skipped = 0
    groups.clear()
    for (const slot of waiting.keys()) nearScreen.unobserve(slot)
    waiting.clear()
    byId('results').replaceChildren()
    byId('export-status').textContent = ''
    updateProgress()
  })
  void showStatus()
}

start()
