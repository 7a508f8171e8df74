import { readFile } from 'node:fs/promises'
import t from 'tap'
import { parse } from 'yaml'
import { generateOpenApiYaml, OPENAPI_PATH } from '../scripts/openapi.js'
import { build } from './helper.js'

t.test('the committed openapi.yaml is exactly what the code generates (run `npm run openapi`)', async (t) => {
  const committed = await readFile(OPENAPI_PATH, 'utf8')
  t.equal(await generateOpenApiYaml(), committed)
})

t.test('/docs/json serves the same document', async (t) => {
  const app = await build(t)
  const served = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.same(served, parse(await readFile(OPENAPI_PATH, 'utf8')))
  const upload = served.paths['/predict'].post.requestBody.content['multipart/form-data'].schema
  t.same(upload.properties.file, { type: 'string', format: 'binary', description: 'One kidney CT slice: a JPEG or PNG image, or a DICOM file (a multi-frame one is classified frame by frame).' })
})
