import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { ModelSpecSchema, type ModelSpec } from '../model-spec.js'
import type { KerasModelFacts } from './convert.js'
import { KerasModelSpecError } from './errors.js'

/**
 * What a Keras file does not record and the user supplies: in `<model>.json` next to the `.h5`/`.keras`
 * (any subset of the ModelSpec fields) or as MODEL_CLASSES / MODEL_SCALE. Everything else comes from the file.
 */
export interface KerasSpecOverrides {
  name?: string
  version?: string
  classes?: string[]
  positiveClass?: string
  threshold?: number
  temperature?: number
  input?: { resize?: 'contain' | 'fill', scale?: number, mean?: number[], std?: number[], window?: { center: number, width: number } }
}

/** 1/255: most Keras image models are trained on pixels scaled to 0..1. */
export const DEFAULT_KERAS_SCALE = 1 / 255

/** Reads the optional user sidecar; a missing file means no overrides. */
export async function readKerasSidecar (path: string): Promise<KerasSpecOverrides> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw error
  }
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as KerasSpecOverrides
  } catch {}
  throw new KerasModelSpecError(`${basename(path)} is not a JSON object`)
}

function definedFields<T extends object> (value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, field]) => field !== undefined)) as Partial<T>
}

/** Later sources win field by field (e.g. environment variables over the sidecar file); unset fields do not. */
export function mergeOverrides (...sources: KerasSpecOverrides[]): KerasSpecOverrides {
  return sources.reduce<KerasSpecOverrides>((merged, source) => ({
    ...merged,
    ...definedFields(source),
    input: { ...merged.input, ...definedFields(source.input) }
  }), {})
}

/** The ModelSpec sidecar for a converted Keras model: file facts plus the user's class names and scaling. */
export function kerasModelSpec (facts: KerasModelFacts, sourceFile: string, overrides: KerasSpecOverrides = {}): ModelSpec {
  const { height, width, channels, layout } = facts.input
  const classes = overrides.classes ?? (facts.outputSize <= 2 ? ['Normal', 'Stone'] : undefined)
  if (classes === undefined) {
    throw new KerasModelSpecError(`the model has ${facts.outputSize} outputs: name them in output order with "classes" in the .json sidecar next to the Keras file, MODEL_CLASSES or --classes`)
  }
  const expectedClasses = facts.outputSize === 1 ? 2 : facts.outputSize
  if (classes.length !== expectedClasses) {
    throw new KerasModelSpecError(`${classes.length} class names given for a model with ${facts.outputSize} output(s); expected ${expectedClasses}`)
  }
  const spec = {
    name: overrides.name ?? basename(sourceFile).replace(/\.(h5|keras)$/i, ''),
    version: overrides.version ?? facts.sourceSha256.slice(0, 12),
    classes,
    positiveClass: overrides.positiveClass ?? 'Stone',
    input: {
      width,
      height,
      channels,
      layout,
      resize: overrides.input?.resize ?? 'fill',
      scale: overrides.input?.scale ?? DEFAULT_KERAS_SCALE,
      mean: overrides.input?.mean ?? new Array<number>(channels).fill(0),
      std: overrides.input?.std ?? new Array<number>(channels).fill(1),
      ...(overrides.input?.window === undefined ? {} : { window: overrides.input.window })
    },
    output: { kind: facts.outputActivation === 'softmax' || facts.outputActivation === 'sigmoid' ? 'probabilities' : 'logits' },
    temperature: overrides.temperature ?? 1,
    threshold: overrides.threshold ?? 0.5,
    source: { kerasFile: basename(sourceFile), ...facts }
  }
  if (!classes.includes(spec.positiveClass)) throw new KerasModelSpecError(`positiveClass "${spec.positiveClass}" is not one of the classes ${classes.join(', ')}`)
  const problem = Value.Errors(ModelSpecSchema, spec).First()
  if (problem !== undefined) throw new KerasModelSpecError(`model description ${problem.path}: ${problem.message}`)
  if (spec.input.mean.length !== channels || spec.input.std.length !== channels) {
    throw new KerasModelSpecError(`input.mean and input.std need ${channels} values`)
  }
  return spec as ModelSpec
}
