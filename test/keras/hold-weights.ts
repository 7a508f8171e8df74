import { openKerasFile } from '../../inference/keras/keras-file.js'

// Run in a child process by test/keras-work-dir.test.ts: opens a .keras archive, the first step of a conversion,
// which unpacks its weights into a folder under the work folder; prints `open` and holds it until stdin ends, then
// closes it as the conversion's end does. Killed meanwhile, it leaves the folder as a killed conversion does.
const [model, workDir] = process.argv.slice(2)
const file = await openKerasFile(model, workDir)
process.stdout.write('open\n')
process.stdin.resume()
process.stdin.once('end', () => { void file.close() })
