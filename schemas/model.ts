import { Type } from '@sinclair/typebox'
import { refTo } from './ref.js'

export const ModelRefSchema = Type.Object({
  name: Type.String(),
  version: Type.String()
}, { $id: 'ModelRef', title: 'ModelRef' })

export const ModelInfoSchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  sha256: Type.String({ description: 'SHA-256 of the ONNX file being served.' }),
  input: Type.Object({
    shape: Type.Array(Type.Union([Type.Integer(), Type.Null()]), { description: 'null is the batch axis.' }),
    layout: Type.Union([Type.Literal('NCHW'), Type.Literal('NHWC')]),
    channels: Type.Integer(),
    width: Type.Integer(),
    height: Type.Integer()
  }),
  classes: Type.Array(Type.String(), { description: 'Class names in output index order.' }),
  preprocessing: Type.Object({
    resize: Type.String({ description: 'contain (letterbox on black, aspect kept) or fill (stretch).' }),
    size: Type.Array(Type.Integer(), { description: '[width, height]' }),
    scale: Type.Number(),
    mean: Type.Array(Type.Number()),
    std: Type.Array(Type.Number()),
    formula: Type.String()
  }),
  dicom: Type.Object({
    window: Type.Object({ center: Type.Number(), width: Type.Number() }, {
      description: 'The window (HU) that turns a CT image\'s Hounsfield units into the model\'s grey levels: the model\'s own ' +
        '(its sidecar\'s input.window, else abdomen 40/400), unless DICOM_WINDOW_CENTER/WIDTH override it.'
    }),
    windowSource: Type.Union([Type.Literal('model'), Type.Literal('file')], {
      description: 'model: that window whatever VOI a file carries (the same HU always give the same answer); file: a file\'s own first window when it has one.'
    }),
    modalities: Type.Array(Type.String(), { description: 'DICOM Modality values classified (8-bit OT/SC secondary captures are read as display images).' })
  }),
  limits: Type.Object({
    maxFileBytes: Type.Integer({ description: 'Largest file (MAX_FILE_BYTES).' }),
    maxPixels: Type.Integer({ description: 'Largest width x height of an image or of one DICOM frame (MAX_PIXELS).' }),
    maxBatchFiles: Type.Integer({ description: 'Files one POST /predict/batch may carry (BATCH_MAX_FILES).' }),
    maxFrames: Type.Integer({ description: 'Frames of one multi-frame DICOM object (DICOM_MAX_FRAMES).' })
  }, { description: 'What one request may carry; beyond it the answer is a typed 4xx naming the limit.' }),
  threshold: Type.Number({ description: 'Stone probability at or above which the answer is Stone.' }),
  temperature: Type.Number(),
  metrics: Type.Record(Type.String(), Type.Number(), { description: 'Headline figures from the model card.' })
}, { $id: 'ModelInfo', title: 'ModelInfo' })

export const StatusSchema = Type.Object({
  service: Type.String(),
  version: Type.String(),
  model: Type.Union([refTo(ModelRefSchema), Type.Null()]),
  status: Type.Union([Type.Literal('loading'), Type.Literal('ready'), Type.Literal('failed')])
}, { $id: 'Status', title: 'Status' })

export const HealthSchema = Type.Object({
  status: Type.String()
}, { $id: 'Health', title: 'Health' })
