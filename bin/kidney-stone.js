#!/usr/bin/env node
// npm's bin entry: registers tsx (a dependency) so the TypeScript CLI runs from any working directory.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../cli/kidney-stone.ts')
await main(process.argv)
