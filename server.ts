import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './plugins/app/config.js'

async function main (): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
  const app = await buildApp({ config })
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'shutting down')
      app.close().then(() => process.exit(0), (err: unknown) => {
        app.log.error({ err }, 'shutdown failed')
        process.exit(1)
      })
    })
  }
  await app.listen({ port: config.port, host: config.host })
  try {
    const classifier = await app.model.loaded
    app.log.info({ model: classifier.spec.name, version: classifier.spec.version }, 'model ready')
  } catch (err) {
    app.log.fatal({ err }, `model could not be loaded from ${config.modelPath}`)
    await app.close()
    process.exit(1)
  }
}

await main()
