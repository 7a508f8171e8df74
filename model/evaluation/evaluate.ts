import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { readModelSpec, sidecarPathFor } from '../../inference/model-spec.js'
import { evaluateModel } from './evaluate-model.js'
import { writeFigures } from './figures.js'
import { decimal, percent, renderModelCard, withInterval } from './model-card.js'

/**
 * `npm run evaluate [-- --model <onnx> --out <dir> --iterations <n>]`: evaluates the model through the
 * service's code and writes `<out>/metrics.json`, `<out>/figures/*.png` and `<out>/MODEL_CARD.md`.
 */
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'model/kidney-stone-cnn.onnx' },
    out: { type: 'string', default: 'model' },
    iterations: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '20251125' },
    threads: { type: 'string', default: '2' }
  }
})

const bootstrap = { iterations: Number(values.iterations), seed: Number(values.seed) }
const run = await evaluateModel({
  modelPath: values.model,
  bootstrap,
  threads: Number(values.threads),
  log: (message) => console.log(message)
})
const spec = await readModelSpec(sidecarPathFor(values.model))
const metricsFile = path.join(values.out, 'metrics.json')
await writeFile(metricsFile, JSON.stringify(run.metrics, null, 2) + '\n')
await writeFigures(run, spec, path.join(values.out, 'figures'))
const template = await readFile(new URL('./MODEL_CARD.template.md', import.meta.url), 'utf8')
await writeFile(path.join(values.out, 'MODEL_CARD.md'), renderModelCard(template, run.metrics))

for (const figure of run.metrics.headline) {
  const measured = withInterval(figure, figure.format === 'decimal' ? decimal : percent)
  console.log(`${figure.met ? 'met    ' : 'MISSED '} ${figure.label}: ${measured} (target ${figure.target})`)
}
console.log(`8x8 thumbnail probe AUC: ct-kidney test ${run.metrics.thumbnailProbe.ctKidneyTestAuc.value.toFixed(3)}, ` +
  `yildirim pairs ${run.metrics.thumbnailProbe.yildirimPairsAuc.value.toFixed(3)}`)
console.log(`evaluation took ${run.metrics.runtimeSeconds} s; wrote ${metricsFile}, ${values.out}/figures, ${values.out}/MODEL_CARD.md`)
