/**
 * Regenerates test/fixtures/keras/<model>.json: reference outputs of the three published Keras models on
 * 24 ct-kidney test images, computed by test/keras/reference.py (NumPy, independent of the converter) on
 * the exact tensors the service's preprocessing makes. Run: `npx tsx test/keras/make-fixtures.ts`
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { convertKerasModel } from '../../inference/keras/convert.js'
import { kerasModelSpec } from '../../inference/keras/spec.js'
import { FIXTURE_DIR, REAL_KERAS_MODELS, SHARED_DIR, imageTensor, referenceOutputs, tensorSha256, type KerasFixture } from './inputs.js'

const PER_CLASS = 12

/** Evenly spaced test-split slices of each class, so every series of the split is likely represented. */
async function pickImages (): Promise<string[]> {
  const rows = (await readFile(join(SHARED_DIR, 'data/ct-kidney/manifest.csv'), 'utf8')).trim().split('\n').slice(1).map((line) => line.split(','))
  return ['normal', 'stone'].flatMap((label) => {
    const paths = rows.filter((r) => r[2] === 'test' && r[1] === label).map((r) => r[0]).sort()
    return Array.from({ length: PER_CLASS }, (_, i) => `data/ct-kidney/${paths[Math.floor((i * paths.length) / PER_CLASS)]}`)
  })
}

const images = await pickImages()
for (const model of REAL_KERAS_MODELS) {
  const modelPath = join(SHARED_DIR, model.file)
  const { facts } = await convertKerasModel(modelPath)
  const spec = kerasModelSpec(facts, modelPath, { classes: 'classes' in model ? [...model.classes] : undefined, input: { scale: model.scale, resize: 'fill' } })
  const tensors = await Promise.all(images.map(async (path) => await imageTensor(path, spec)))
  const outputs = await referenceOutputs(modelPath, tensors)
  const fixture: KerasFixture = {
    model: model.file,
    modelSha256: facts.sourceSha256,
    kerasVersion: facts.kerasVersion,
    input: { width: spec.input.width, height: spec.input.height, channels: spec.input.channels, resize: spec.input.resize, scale: model.scale },
    reference: 'test/keras/reference.py (NumPy float64, weights read with h5py)',
    regenerate: 'npx tsx test/keras/make-fixtures.ts',
    images: images.map((path, i) => ({ path, inputSha256: tensorSha256(tensors[i]), output: outputs[i] }))
  }
  await writeFile(join(FIXTURE_DIR, `${model.id}.json`), JSON.stringify(fixture, null, 1) + '\n')
  console.log(`${model.id}: ${images.length} images, first output ${JSON.stringify(outputs[0])}`)
}
