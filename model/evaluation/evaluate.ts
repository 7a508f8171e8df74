import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { readModelSpec, sidecarPathFor } from '../../inference/model-spec.js'
import { evaluateModel, type ModelMetrics } from './evaluate-model.js'
import { writeFigures } from './figures.js'
import { decimal, percent, renderModelCard, withInterval } from './model-card.js'

/**
 * `npm run evaluate [-- --model <onnx> --out <dir> --iterations <n>]`: evaluates the model through the
 * service's code and writes `<out>/metrics.json`, `<out>/figures/*.png` and `<out>/MODEL_CARD.md`.
 * `--card-only` re-renders the card from an existing metrics.json after editing the template's prose.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'model/kidney-stone-cnn.onnx' },
    out: { type: 'string', default: 'model' },
    iterations: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '20251125' },
    threads: { type: 'string', default: '2' },
    'card-only': { type: 'boolean', default: false }
  }
})

const metricsFile = path.join(values.out, 'metrics.json')
const template = await readFile(new URL('./MODEL_CARD.template.md', import.meta.url), 'utf8')
const writeCard = async (metrics: ModelMetrics): Promise<void> => {
  await writeFile(path.join(values.out, 'MODEL_CARD.md'), renderModelCard(template, metrics))
}

if (values['card-only']) {
  await writeCard(JSON.parse(await readFile(metricsFile, 'utf8')) as ModelMetrics)
  console.log(`wrote ${values.out}/MODEL_CARD.md from ${metricsFile}`)
} else {
  const run = await evaluateModel({
    modelPath: values.model,
    bootstrap: { iterations: Number(values.iterations), seed: Number(values.seed) },
    threads: Number(values.threads),
    log: (message) => console.log(message)
  })
  await mkdir(values.out, { recursive: true })
  await writeFile(metricsFile, JSON.stringify(run.metrics, null, 2) + '\n')
  await writeFigures(run, await readModelSpec(sidecarPathFor(values.model)), path.join(values.out, 'figures'))
  await writeCard(run.metrics)

  for (const figure of run.metrics.headline) {
    const measured = withInterval(figure, figure.format === 'decimal' ? decimal : percent)
    console.log(`${figure.met ? 'met    ' : 'MISSED '} ${figure.label}: ${measured} (target ${figure.target})`)
  }
  const probe = run.metrics.thumbnailProbe
  console.log(`8x8 thumbnail probe AUC: ct-kidney test ${decimal(probe.ctKidneyTestAuc.value)}, yildirim pairs ${decimal(probe.yildirimPairsAuc.value)}`)
  console.log(`evaluation took ${run.metrics.runtimeSeconds} s; wrote ${metricsFile}, ${values.out}/figures, ${values.out}/MODEL_CARD.md`)
}
