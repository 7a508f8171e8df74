import { readFile } from 'node:fs/promises'
import t from 'tap'
import { evaluateModel, type ModelMetrics } from '../model/evaluation/evaluate-model.js'

/**
 * Re-evaluates the committed model with the code of `npm run evaluate` (point estimates only, nothing
 * written) and compares it with the committed model/metrics.json, which is what the model card shows.
 * A change in decoding, preprocessing, the session or the model that costs more than 0.01 on any headline
 * figure fails here instead of landing silently.
 */
const MODEL = new URL('../model/kidney-stone-cnn.onnx', import.meta.url).pathname
const ALLOWED_DROP = 0.01

const committed = JSON.parse(await readFile(new URL('../model/metrics.json', import.meta.url), 'utf8')) as ModelMetrics

t.test('headline figures do not drop by more than 0.01 against model/metrics.json', async (t) => {
  const { metrics } = await evaluateModel({ modelPath: MODEL, bootstrap: { iterations: 0, seed: committed.bootstrap.seed } })

  t.equal(metrics.model.sha256, committed.model.sha256,
    'metrics.json describes the committed ONNX file (re-run `npm run evaluate` after changing the model)')
  t.same(metrics.headline.map((figure) => figure.id), committed.headline.map((figure) => figure.id), 'same headline figures')

  for (const figure of metrics.headline) {
    const reference = committed.headline.find((candidate) => candidate.id === figure.id)
    if (reference === undefined) continue
    const drop = figure.higherIsBetter ? reference.value - figure.value : figure.value - reference.value
    t.ok(Number.isFinite(figure.value), `${figure.label} is defined`)
    t.ok(drop <= ALLOWED_DROP,
      `${figure.label}: ${figure.value.toFixed(4)} now, ${reference.value.toFixed(4)} in metrics.json`)
  }
})
