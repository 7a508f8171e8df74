import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './plugins/app/config.js'

/**
 * Signals close-with-grace would listen to that are faults, not requests to stop. A JavaScript listener for SIGSEGV
 * replaces the handler through which V8 turns a WebAssembly module's out-of-bounds memory access into a RuntimeError:
 * such an access in a worker thread (PGlite's database, the DICOM codecs) then killed the process (Segmentation fault),
 * where the worker's caller would have had an error. Node's documentation: these signals, when not sent with kill(2),
 * leave the process where no JavaScript listener can safely run.
 */
const FAULT_SIGNALS: Array<'SIGSEGV' | 'SIGBUS' | 'SIGFPE' | 'SIGILL'> = ['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL']

/** A bad setting (a variable, the upload directory) stops the process with one line naming it. */
async function configured<T> (step: () => T | Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
}

async function main (): Promise<void> {
  const config = await configured(() => loadConfig())
  const app = await configured(async () => await buildApp({ config }))
  // SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the model session, exit 0; exit 1 if
  // that takes longer than the grace period, on a second signal, or after an uncaught error.
  closeWithGrace({ delay: config.shutdownGraceMs, logger: app.log, skip: FAULT_SIGNALS }, async ({ signal, err }) => {
    if (err !== undefined) app.log.fatal({ err }, 'uncaught error, shutting down')
    else app.log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down')
    await app.close()
  })
  await app.listen({ port: config.port, host: config.host })
  try {
    const classifier = await app.model.loaded
    app.log.info({ model: classifier.spec.name, version: classifier.spec.version }, 'model ready')
  } catch (err) {
    app.log.fatal({ err }, `model could not be loaded from ${config.modelPath}`)
    await app.close()
    process.exit(1)
  }
  try {
    // a PostgreSQL server that is not there yet is retried in the background (readiness says so); only an
    // embedded database that cannot be opened stops the service
    await app.records.opened
  } catch (err) {
    app.log.fatal({ err }, `the records database in ${config.records.dataDir} could not be opened`)
    await app.close()
    process.exit(1)
  }
}

await main()
