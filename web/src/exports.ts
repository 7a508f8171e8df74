import { formatResults, type FileResult } from '../../cli/output.js'
import { storedPredictionAsFhir, type KidneyStoneClient } from '../../client/index.js'
import type { Entry } from './entry.js'

/** The results as the CLI's CSV (cli/output.ts): the same columns, so a spreadsheet reads both alike. */
export function resultsCsv (entries: Entry[]): string {
  const rows = entries.flatMap((entry): FileResult[] => {
    if (entry.prediction !== undefined) return [{ file: entry.path, ...entry.prediction } as FileResult]
    if (entry.error !== undefined) return [{ file: entry.path, error: entry.error }]
    return []
  })
  return formatResults(rows, 'csv')
}

/**
 * The server's FHIR R4 DiagnosticReport of every classified file (GET /predictions/{id}), in one Bundle of type
 * collection. Throws with the server's words when a report cannot be had (e.g. the records API is off).
 */
export async function fhirBundle (client: KidneyStoneClient, entries: Entry[]): Promise<object> {
  const reports = []
  for (const entry of entries) {
    if (entry.prediction === undefined) continue
    const { data, error, response } = await storedPredictionAsFhir(client, entry.prediction.id)
    if (data === undefined) throw new Error(`${entry.path}: ${error?.message ?? response.statusText} (${error?.code ?? `HTTP ${response.status}`})`)
    reports.push(data)
  }
  return { resourceType: 'Bundle', type: 'collection', timestamp: new Date().toISOString(), entry: reports.map((resource) => ({ resource })) }
}

/** Offers `text` as a file download. */
export function download (name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }))
  const link = document.createElement('a')
  link.href = url
  link.download = name
  document.body.append(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
