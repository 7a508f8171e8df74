import type { Finding, Prediction, StudyResult } from '../../client/index.js'
import { probabilityText, thresholdText } from '../../inference/probability-text.js'
import type { Entry } from './entry.js'

/** An element with text and classes; server text only ever goes in as textContent. */
export function element<K extends keyof HTMLElementTagNameMap> (tag: K, text?: string, ...classes: string[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  node.classList.add(...classes)
  return node
}

export function pendingCard (path: string): HTMLElement {
  const card = element('article', undefined, 'card')
  card.append(element('h4', path), element('p', 'Classifying…', 'pending'))
  return card
}

const percent = (p: number): string => `${(100 * p).toFixed(1)} %`

function findingText ({ box, score }: Finding, rank: number): string {
  return `${rank + 1}. box at x ${box.x}, y ${box.y}, ${box.width} × ${box.height} px, score ${score.toFixed(3)}`
}

/** A classified file: class, P(Stone) against the threshold, band, findings, recommendations, disclaimer, overlay slot. */
export function resultCard (path: string, prediction: Prediction): { card: HTMLElement, overlay: HTMLElement } {
  const stone = prediction.prediction === 'Stone'
  const card = element('article', undefined, 'card')
  card.append(element('h4', path))
  card.append(element('p', stone ? 'Stone suspected' : 'No stone detected (Normal)', 'verdict', stone ? 'stone' : 'normal'))
  const pStone = prediction.probabilities.Stone
  const comparison = pStone >= prediction.threshold ? 'at or above' : 'below'
  card.append(element('p', `P(Stone) ${probabilityText(pStone, prediction.threshold)}, ${comparison} the threshold ${thresholdText(prediction.threshold)}; confidence ${prediction.confidenceBand} (${percent(prediction.confidence)}).`, 'probability'))
  const bar = element('div', undefined, 'bar')
  bar.setAttribute('role', 'img')
  // read aloud as the text above it reads: a percentage to one decimal hid which side of 0.2018 a 0.2016 was on
  bar.setAttribute('aria-label', `P(Stone) ${probabilityText(pStone, prediction.threshold)}, ${comparison} the threshold ${thresholdText(prediction.threshold)}`)
  const fill = element('div', undefined, 'fill')
  fill.style.width = percent(pStone).replace(' ', '')
  const threshold = element('div', undefined, 'threshold')
  threshold.style.left = percent(prediction.threshold).replace(' ', '')
  bar.append(fill, threshold)
  card.append(bar)
  const findings = prediction.findings
  if (findings !== undefined && findings.length > 0) {
    card.append(element('p', 'Where the model found its evidence (pixels of this image):'))
    const list = element('ul', undefined, 'findings')
    findings.forEach((finding, rank) => list.append(element('li', findingText(finding, rank))))
    card.append(list)
  } else if (stone) {
    card.append(element('p', 'No region of the activation map stands out.'))
  }
  card.append(element('p', 'Recommendations:'))
  const recommendations = element('ul')
  for (const text of prediction.recommendations) recommendations.append(element('li', text))
  card.append(recommendations)
  const overlay = element('div', undefined, 'overlay')
  overlay.append(element('p', 'Loading the overlay…', 'pending'))
  card.append(overlay)
  card.append(element('p', prediction.disclaimer, 'disclaimer'))
  return { card, overlay }
}

export function errorCard (path: string, error: NonNullable<Entry['error']>): HTMLElement {
  const card = element('article', undefined, 'card')
  card.append(element('h4', path))
  card.append(element('p', 'Not classified', 'verdict', 'error'))
  const status = error.statusCode === undefined ? '' : `, HTTP ${error.statusCode}`
  card.append(element('p', `${error.message} (${error.code}${status})`, 'error'))
  return card
}

/** What an overlay slot shows: the image (a data: URL, which the helmet CSP's img-src 'self' data: allows), or why there is none. */
export type OverlayView = { dataUrl: string, heatmap: boolean, toggle: () => void } | { error: string }

export function showOverlay (slot: HTMLElement, prediction: Prediction, view: OverlayView): void {
  slot.replaceChildren()
  if ('error' in view) { slot.append(element('p', `Overlay not available: ${view.error}`, 'error')); return }
  const img = element('img')
  img.src = view.dataUrl
  const boxes = prediction.findings?.length ?? 0
  const boxText = boxes > 0 ? ` ${boxes} finding box${boxes > 1 ? 'es' : ''}` : ''
  img.alt = view.heatmap ? `The slice with the model's heatmap${boxText === '' ? '' : ` and${boxText}`}.` : `The slice${boxText === '' ? '' : ` with${boxText}`}, without the heatmap.`
  const button = element('button', view.heatmap ? 'Hide the heatmap' : 'Show the heatmap')
  button.type = 'button'
  button.addEventListener('click', view.toggle)
  slot.append(img, button)
  if (view.heatmap) {
    slot.append(element('p', 'Heatmap: where the model found evidence for Stone, relative to this image (dark to bright yellow: weak to strong; on a Normal answer it marks no finding). Boxes: findings, the strongest solid.', 'disclaimer'))
  }
}

/** The group a result belongs in: its DICOM series, or the images without one. */
export function groupKey (prediction: Prediction | undefined): string {
  return prediction?.dicom?.seriesInstanceUid ?? ''
}

export interface Group {
  section: HTMLElement
  cards: HTMLElement
  /** Where the server's series conclusion goes (DICOM series only). */
  conclusion?: HTMLElement
}

export function groupSection (key: string, studyInstanceUid?: string): Group {
  const section = element('section', undefined, 'group')
  const title = key === '' ? 'Images and files without a DICOM series' : `DICOM series ${key}`
  section.append(element('h3', title))
  let conclusion: HTMLElement | undefined
  if (key !== '') {
    if (studyInstanceUid !== undefined) section.append(element('p', `Study ${studyInstanceUid}`, 'hint'))
    conclusion = element('div', undefined, 'series-conclusion')
    conclusion.setAttribute('aria-live', 'polite')
    conclusion.append(element('p', studyInstanceUid === undefined
      ? 'Series conclusion: not available (the file names no study).'
      : 'Series conclusion: asked of the service once every file is classified.'))
    section.append(conclusion)
  }
  const cards = element('div', undefined, 'cards')
  section.append(cards)
  return { section, cards, ...(conclusion === undefined ? {} : { conclusion }) }
}

type SeriesResult = StudyResult['series'][number]

/** The service's conclusion for one series, in words (computed by the service: GET /studies/{uid}), or why there is none. */
export function showSeriesConclusion (slot: HTMLElement, series: SeriesResult | { error: string }): void {
  slot.replaceChildren()
  if ('error' in series) { slot.append(element('p', `Series conclusion: not available: ${series.error}`)); return }
  const words = { Stone: 'Stone suspected', Normal: 'no stone detected (Normal)', Undetermined: 'undetermined (no slice classified)' }
  slot.append(element('p', `Series conclusion: ${words[series.conclusion]}${series.final ? '' : ' (not final: more slices may still arrive)'}.`))
  const { received, classified, failed } = series.instances
  const rule = `Stone when at least ${series.rule.minAdjacentSlices} adjacent slice(s) have P(Stone) at or above ${thresholdText(series.rule.threshold)}`
  slot.append(element('p', `The service holds ${received} instance(s) of this series: ${classified} classified, ${failed} refused. ${rule}.`, 'hint'))
  if (series.positiveRanges.length > 0) {
    const list = element('ul')
    for (const range of series.positiveRanges) {
      const numbers = range.fromInstanceNumber === undefined ? '' : `, InstanceNumber ${range.fromInstanceNumber}–${range.toInstanceNumber ?? range.fromInstanceNumber}`
      list.append(element('li', `slices ${range.first + 1}–${range.last + 1} of ${series.slices.length} in slice order${numbers}: ${range.slices} adjacent, highest P(Stone) ${probabilityText(range.maxProbability, series.rule.threshold)}`))
    }
    slot.append(list)
  }
}
