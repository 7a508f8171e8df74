import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { spreadFiles } from '../../test/helper.js'

/** One answer as the client saw it. */
export interface Outcome {
  kind: string
  startedAt: number
  endedAt: number
  /** 0: no HTTP answer at all (the connection failed). */
  status: number
  /** The typed error code of a non-200 answer, when its body had one. */
  code?: string
  /** The classified answers it carried, by id (one for /predict, one per file for /predict/batch). */
  answers: Array<{ id: string, prediction: string, probabilities: Record<string, number> }>
  /** GET /predictions/{id}: the record read back matched the answer it was recorded for. */
  readBack?: boolean
  error?: string
}

interface Upload { name: string, bytes: Buffer }

export interface Corpus { slices: Upload[], originals: Upload[], dicom: Upload[] }

export async function loadCorpus (shared: string): Promise<Corpus> {
  const ct = join(shared, 'data/ct-kidney')
  const slices = [...await spreadFiles(join(ct, 'test/stone'), 24), ...await spreadFiles(join(ct, 'test/normal'), 24)]
  const originals = [...await spreadFiles(join(ct, 'originals/stone'), 4), ...await spreadFiles(join(ct, 'originals/normal'), 4)]
  // JPEG-LS (170 KB: a balancer retry can replay it) and uncompressed (530 KB: larger than its retry buffer)
  const dicom = await Promise.all(['ct1-unc-jpeg-ls.dcm', 'ct1-unc-explicit-little-endian.dcm']
    .map(async (name) => ({ name, bytes: await readFile(join(shared, 'data/dicom', name)) })))
  return { slices, originals, dicom }
}

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)]

function form (field: string, uploads: Upload[]): FormData {
  const data = new FormData()
  for (const upload of uploads) data.append(field, new Blob([new Uint8Array(upload.bytes)]), upload.name)
  return data
}

type Answer = Outcome['answers'][number]

/** The mixed traffic of a radiology department, by share of requests. */
function nextRequest (corpus: Corpus, answered: Answer[]): { kind: string, path: string, init?: RequestInit, read?: Answer } {
  const roll = Math.random()
  if (roll < 0.55) return { kind: 'slice', path: '/predict', init: { method: 'POST', body: form('file', [pick(corpus.slices)]) } }
  if (roll < 0.65) return { kind: 'original', path: '/predict', init: { method: 'POST', body: form('file', [pick(corpus.originals)]) } }
  if (roll < 0.75) return { kind: 'dicom', path: '/predict', init: { method: 'POST', body: form('file', [pick(corpus.dicom)]) } }
  if (roll < 0.85 || answered.length === 0) {
    const files = Array.from({ length: 4 }, () => pick(corpus.slices))
    return { kind: 'batch', path: '/predict/batch', init: { method: 'POST', body: form('files', files) } }
  }
  const read = pick(answered)
  return { kind: 'read', path: `/predictions/${read.id}`, read }
}

function answersOf (kind: string, body: any): Answer[] {
  const strip = (a: any): Answer => ({ id: a.id, prediction: a.prediction, probabilities: a.probabilities })
  if (kind === 'batch') return (body.results as any[]).filter((entry) => entry.result !== undefined).map((entry) => strip(entry.result))
  return kind === 'read' ? [] : [strip(body)]
}

export function sameAnswer (a: Answer, b: Answer): boolean {
  return a.id === b.id && a.prediction === b.prediction && JSON.stringify(a.probabilities) === JSON.stringify(b.probabilities)
}

async function send (url: string, corpus: Corpus, answered: Answer[]): Promise<Outcome> {
  const request = nextRequest(corpus, answered)
  const startedAt = Date.now()
  try {
    const res = await fetch(url + request.path, { ...request.init, signal: AbortSignal.timeout(120_000) })
    const text = await res.text()
    let body: any
    try { body = JSON.parse(text) } catch { body = undefined }
    const outcome: Outcome = { kind: request.kind, startedAt, endedAt: Date.now(), status: res.status, answers: [] }
    if (res.status !== 200) return { ...outcome, code: typeof body?.code === 'string' ? body.code : undefined }
    outcome.answers = answersOf(request.kind, body)
    if (request.read !== undefined) outcome.readBack = sameAnswer(request.read, { id: body.id, prediction: body.prediction, probabilities: body.probabilities })
    return outcome
  } catch (error) {
    return { kind: request.kind, startedAt, endedAt: Date.now(), status: 0, answers: [], error: String((error as Error).cause ?? error) }
  }
}

/** `connections` clients sending one request after another to `url` until `until` (ms since the epoch). */
export async function runLoad (url: string, corpus: Corpus, connections: number, until: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  const answered: Answer[] = []
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < until) {
      const outcome = await send(url, corpus, answered)
      outcomes.push(outcome)
      answered.push(...outcome.answers)
      // a turned-away client waits as told (Retry-After is seconds; a short pause keeps the test moving)
      if (outcome.status !== 200) await sleep(100)
    }
  }))
  return outcomes
}
