import type { Prediction } from '../../client/index.js'

/** One file on the page: sent, then answered with a prediction or a typed error. */
export interface Entry {
  file: File
  path: string
  prediction?: Prediction
  error?: { code: string, message: string, statusCode?: number }
  card: HTMLElement
}
