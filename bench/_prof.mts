import { spawn } from 'node:child_process'
import { drive } from './load.js'
import { benchImageSets } from './images.js'
const set = (await benchImageSets())[Number(process.argv[2] ?? 0)]
const child = spawn('node', ['--cpu-prof', '--cpu-prof-dir=/tmp/prof', '--import', 'tsx', 'server.ts'], { env: { ...process.env, PORT: '3999', HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0' }, stdio: 'inherit' })
for (let i = 0; i < 100; i++) { try { const r = await fetch('http://127.0.0.1:3999/health/ready'); if (r.ok) break } catch {} ; await new Promise(r => setTimeout(r, 500)) }
await drive('http://127.0.0.1:3999', set.bytes, 8, 3)
const r = await drive('http://127.0.0.1:3999', set.bytes, 8, Number(process.argv[3] ?? 20))
console.log(set.name, r.requestsPerSecond.toFixed(1), 'req/s', r.latencyMs, r.errors)
child.kill('SIGINT')
await new Promise(r => child.on('exit', r))
