import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'

// The official schema from the onnx package (onnx 1.12, IR version 8), loaded as is.
const onnxSchema = protobuf.loadSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)))
const ModelProto = onnxSchema.lookupType('onnx.ModelProto')

/** Opset 13: every operator the converter emits exists there, and every current runtime runs it. */
export const OPSET = 13
const IR_VERSION = 7

const FLOAT = 1
const INT64 = 7
const ATTRIBUTE_TYPE = { FLOAT: 1, INT: 2, FLOATS: 6, INTS: 7 } as const

export type AttributeValue = number | number[] | { float: number }

export interface TensorInfo { name: string, dims: Array<number | null> }

interface AttributeProto { name: string, type: number, f?: number, i?: number, floats?: number[], ints?: number[] }

/** Integers become INT(S) attributes; `{ float: x }` forces a FLOAT for values that happen to be whole. */
function toAttribute (name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: ATTRIBUTE_TYPE.INT, i: value } : { name, type: ATTRIBUTE_TYPE.FLOAT, f: value }
  }
  if (Array.isArray(value)) return { name, type: ATTRIBUTE_TYPE.INTS, ints: value }
  return { name, type: ATTRIBUTE_TYPE.FLOAT, f: value.float }
}

/**
 * A growing ONNX graph: nodes in execution order, constants as initializers, unique tensor names.
 * It knows nothing about Keras; the layer converters decide what to emit.
 */
export class OnnxGraph {
  private readonly nodes: unknown[] = []
  private readonly initializers: unknown[] = []
  private readonly usedNames = new Set<string>()

  /** A tensor name not used before, derived from `base` (usually the Keras layer name). */
  name (base: string): string {
    let candidate = base
    for (let n = 1; this.usedNames.has(candidate); n++) candidate = `${base}_${n}`
    this.usedNames.add(candidate)
    return candidate
  }

  floatConstant (base: string, dims: number[], values: Float32Array | number[]): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values)
    const expected = dims.reduce((a, b) => a * b, 1)
    if (data.length !== expected) throw new Error(`constant ${base}: ${data.length} values for dims ${dims.join('x')}`)
    const name = this.name(base)
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: Buffer.from(data.buffer, data.byteOffset, data.byteLength) })
    return name
  }

  int64Constant (base: string, values: number[]): string {
    const name = this.name(base)
    const raw = Buffer.alloc(values.length * 8)
    values.forEach((value, i) => raw.writeBigInt64LE(BigInt(value), i * 8))
    this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: raw })
    return name
  }

  /** Appends one node and returns the name of its (single) output. */
  node (opType: string, inputs: string[], base: string, attributes: Record<string, AttributeValue> = {}): string {
    return this.append(opType, inputs, this.name(base), attributes)
  }

  /** Copies `input` to `output`, a name taken with `name()` beforehand (graph outputs keep their exact names). */
  identity (input: string, output: string): string {
    return this.append('Identity', [input], output, {})
  }

  private append (opType: string, inputs: string[], output: string, attributes: Record<string, AttributeValue>): string {
    this.nodes.push({
      opType,
      name: output,
      input: inputs,
      output: [output],
      attribute: Object.entries(attributes).map(([key, value]) => toAttribute(key, value))
    })
    return output
  }

  /** Serialises the graph with one float input and its float outputs in order; `null` dims are the dynamic batch. */
  encode (input: TensorInfo, outputs: TensorInfo[], docString: string): Uint8Array {
    const valueInfo = (name: string, dims: Array<number | null>): unknown => ({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (d === null ? { dimParam: 'batch' } : { dimValue: d })) } } }
    })
    const model = {
      irVersion: IR_VERSION,
      producerName: 'kidney-stone-service keras converter',
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: 'keras_model',
        node: this.nodes,
        initializer: this.initializers,
        input: [valueInfo(input.name, input.dims)],
        output: outputs.map((output) => valueInfo(output.name, output.dims))
      }
    }
    const problem = ModelProto.verify(model)
    if (problem !== null) throw new Error(`ONNX model does not match onnx.proto: ${problem}`)
    return ModelProto.encode(ModelProto.fromObject(model)).finish()
  }
}
