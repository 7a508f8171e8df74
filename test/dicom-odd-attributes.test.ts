import t from 'tap'
import { build, fileUpload } from './helper.js'
import { element, text, writeDicom } from './helpers/dicom-writer.js'

// Header values a PACS export should never carry but a file can: each gets an answer (the value left out), never a
// 500 from the reader or a 503 from the records store.

const slice = (extraElements: Buffer[]): Buffer =>
  writeDicom({ rows: 16, columns: 16, bitsAllocated: 16, signed: true, rescaleIntercept: -1024, values: new Array(256).fill(1064), extraElements })
const ds = (elem: number, value: string): Buffer => element(0x0020, elem, 'DS', text(value))
const AXIAL = '1\\0\\0\\0\\1\\0'

t.test('a plane position or orientation with too few values is ignored: SliceLocation gives the position', async (t) => {
  const app = await build(t)
  const cases: Array<[string, Buffer[]]> = [
    ['ImagePositionPatient with 2 values', [ds(0x0032, '1\\2'), ds(0x0037, AXIAL)]],
    ['ImageOrientationPatient with 3 values', [ds(0x0032, '1\\2\\3'), ds(0x0037, '1\\0\\0')]],
    ['ImagePositionPatient with 1 value, empty orientation', [ds(0x0032, '7'), ds(0x0037, '')]]
  ]
  for (const [name, elements] of cases) {
    const res = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice([...elements, ds(0x1041, '-42.5')]), 'slice.dcm') })
    t.equal(res.statusCode, 200, `${name}: ${res.body.slice(0, 200)}`)
    t.equal(res.json().dicom?.slicePosition, -42.5, `${name}: the position is SliceLocation's`)
  }
  const complete = await app.inject({ method: 'POST', url: '/predict', ...fileUpload(slice([ds(0x0032, '1\\2\\3'), ds(0x0037, AXIAL)]), 'slice.dcm') })
  t.equal(complete.json().dicom?.slicePosition, 3, 'three and six values still give the projected position')
})
