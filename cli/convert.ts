/**
 * Keras -> ONNX, without Python or TensorFlow:
 *   npm run convert -- <model.h5|model.keras> <out.onnx> [--classes Normal,Stone] [--scale 0.00392156862745098]
 * Writes <out.onnx> and its sidecar <out.json> (what the Keras file tells, plus class names and scaling from
 * the options, else from <model>.json next to the Keras file, else the defaults), and prints one line per layer.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Command, InvalidArgumentError } from 'commander'
import { ServiceError } from '../inference/errors.js'
import { convertKerasModel } from '../inference/keras/convert.js'
import { kerasModelSpec, mergeOverrides, readKerasSidecar } from '../inference/keras/spec.js'
import { sidecarPathFor } from '../inference/model-spec.js'

function positiveNumber (value: string): number {
  const number = Number(value)
  if (!Number.isFinite(number) || number <= 0) throw new InvalidArgumentError('expected a positive number')
  return number
}

const program = new Command('convert')
  .description('Convert a Keras .h5/.keras image classifier to ONNX plus its JSON sidecar')
  .argument('<model>', 'Keras model file (.h5 from Keras 2 or 3, .keras from Keras 3)')
  .argument('<out>', 'ONNX file to write; the sidecar goes next to it as <out>.json')
  .option('--classes <names>', 'class names in output order, comma-separated (like MODEL_CLASSES)', (v) => v.split(',').map((s) => s.trim()))
  .option('--scale <factor>', 'pixel scale the model was trained with, e.g. 0.00392156862745098 for /255 (like MODEL_SCALE)', positiveNumber)
  .option('--threshold <p>', 'P(Stone) at or above which the prediction is Stone', positiveNumber)
  .action(async (modelPath: string, outPath: string, options: { classes?: string[], scale?: number, threshold?: number }) => {
    const conversion = await convertKerasModel(modelPath)
    for (const line of conversion.summary) console.log(line)
    const overrides = mergeOverrides(await readKerasSidecar(sidecarPathFor(modelPath)),
      { classes: options.classes, threshold: options.threshold, input: { scale: options.scale } })
    const spec = kerasModelSpec(conversion.facts, modelPath, overrides)
    await mkdir(dirname(outPath), { recursive: true })
    await writeFile(outPath, conversion.onnx)
    await writeFile(sidecarPathFor(outPath), JSON.stringify(spec, null, 2) + '\n')
    const { facts } = conversion
    console.log(`wrote ${outPath} (${conversion.onnx.length} bytes) and ${sidecarPathFor(outPath)}: Keras ${facts.kerasVersion} ${facts.modelClass}, ` +
      `input ${facts.input.height}x${facts.input.width}x${facts.input.channels} NHWC, ${facts.outputSize} output(s) (${spec.output.kind}), classes ${spec.classes.join(', ')}, scale ${spec.input.scale}; ` +
      `ONNX outputs ${facts.outputs.map((o) => `${o.name} [N,${o.shape.join(',')}]`).join(', ')}`)
  })

try {
  await program.parseAsync()
} catch (error) {
  // Typed errors (bad file, unsupported layer, missing class names) are for the user, without a stack trace.
  if (!(error instanceof ServiceError)) throw error
  console.error(`convert: ${error.message} [${error.code}]`)
  process.exitCode = 1
}
