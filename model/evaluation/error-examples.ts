import path from 'node:path'

/** A kind of error with how often it happened and its most confident instances, for the model card. */
export interface ErrorKind {
  kind: string
  count: number
  of: number
  worst: Array<{ image: string, group: string, probability: number }>
}

interface Candidate {
  image: string
  group: string
  probability: number
  wrong: boolean
}

const EXAMPLES = 5

/**
 * The `count` most extreme items by `score`, at most one per group until every group had its turn:
 * neighbouring slices of one series are near-copies, and five of them would show one mistake five times.
 */
export function mostExtremeAcrossGroups<T> (
  items: readonly T[], groupOf: (item: T) => string, score: (item: T) => number, highestFirst: boolean, count: number
): T[] {
  const sorted = [...items].sort((a, b) => (highestFirst ? score(b) - score(a) : score(a) - score(b)))
  const seen = new Set<string>()
  const spread = sorted.filter((item) => !seen.has(groupOf(item)) && seen.add(groupOf(item)) !== undefined)
  return [...spread, ...sorted.filter((item) => !spread.includes(item))].slice(0, count)
}

function errorKind (kind: string, candidates: Candidate[], wrongWhenHigh: boolean): ErrorKind {
  const wrong = candidates.filter((candidate) => candidate.wrong)
  return {
    kind,
    count: wrong.length,
    of: candidates.length,
    worst: mostExtremeAcrossGroups(wrong, (c) => c.group, (c) => c.probability, wrongWhenHigh, EXAMPLES)
      .map(({ image, group, probability }) => ({ image, group, probability }))
  }
}

export interface SliceForErrors {
  path: string
  group: string
  label: 0 | 1
  finding: string
  probability: number
}

export interface TripletForErrors {
  image: string
  group: string
  original: number
  stoneRemoved: number
  decoy: number | undefined
}

export function errorExamples (slices: readonly SliceForErrors[], triplets: readonly TripletForErrors[], threshold: number): ErrorKind[] {
  const slice = (s: SliceForErrors, wrong: boolean): Candidate => ({ image: s.path, group: s.group, probability: s.probability, wrong })
  const triplet = (t: TripletForErrors, probability: number, wrongWhenHigh: boolean): Candidate => ({
    image: path.basename(t.image), group: t.group, probability, wrong: wrongWhenHigh ? probability >= threshold : probability < threshold
  })
  const withDecoy = triplets.filter((t) => t.decoy !== undefined)
  const falseAlarms = (kind: string, finding: string): ErrorKind => errorKind(kind,
    slices.filter((s) => s.finding === finding).map((s) => slice(s, s.probability >= threshold)), true)
  return [
    errorKind('ct-kidney test: Stone slice missed',
      slices.filter((s) => s.label === 1).map((s) => slice(s, s.probability < threshold)), false),
    falseAlarms('ct-kidney test: Normal slice called Stone', 'normal'),
    falseAlarms('ct-kidney-other test: cyst slice called Stone', 'cyst'),
    falseAlarms('ct-kidney-other test: tumour slice called Stone', 'tumor'),
    errorKind('yildirim held-out: original slice missed', triplets.map((t) => triplet(t, t.original, false)), false),
    errorKind('yildirim held-out: stones removed, still called Stone', triplets.map((t) => triplet(t, t.stoneRemoved, true)), true),
    errorKind('yildirim held-out: decoy turned the call to Normal', withDecoy.map((t) => triplet(t, t.decoy as number, false)), false)
  ]
}
