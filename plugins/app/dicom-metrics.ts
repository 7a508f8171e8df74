import { Counter, type Registry } from 'prom-client'
import {
  ASSOCIATION_REFUSALS, ASSOCIATION_REFUSALS_BY_STAGE, COMMAND_REFUSALS, CONTEXT_REJECTIONS, type CommandRefusal, type ContextRejection
} from '../../dicom-node/events.js'

const CALLING_AE_HELP = 'the calling AE title when DICOM_ALLOWED_AES lists it, else unlisted'
/** The route of the DICOM node's instances in their records and in kidney_dicom_instances_total. */
export const DIMSE_ROUTE = 'DIMSE C-STORE'
/**
 * The C-STORE refusals KidneyStoneDicomInstancesRefused watches that are not about one file's content: the service's
 * capacity, model or storage (answered 0xA700, the sender retries), our own fault, and the node's size limit.
 */
const WATCHED_INSTANCE_OUTCOMES = ['QUEUE_FULL', 'DECODER_BUSY', 'INFLIGHT_BUDGET_FULL', 'MODEL_NOT_READY', 'MODEL_FAILED', 'RECORDS_UNAVAILABLE',
  'UPLOADS_UNAVAILABLE', 'INTERNAL_ERROR', 'FILE_TOO_LARGE']

/** The DICOM node's and STOW-RS's counters, labelled by the sender's calling AE title (`callingAeLabel`). */
export class DicomMetrics {
  readonly instances: Counter<'route' | 'outcome' | 'calling_ae'>
  readonly associationsRefused: Counter<'calling_ae' | 'reason'>
  readonly commandsRefused: Counter<'calling_ae' | 'command' | 'reason'>
  readonly contextsRejected: Counter<'calling_ae' | 'reason'>

  constructor (registry: Registry, private readonly allowedAes: readonly string[]) {
    this.instances = new Counter({
      name: 'kidney_dicom_instances_total',
      help: 'DICOM instances received as a DICOM node, by route (DIMSE C-STORE or /studies), outcome (stored, or the refusal\'s code) ' +
        'and calling_ae (' + CALLING_AE_HELP + '; none over /studies).',
      labelNames: ['route', 'outcome', 'calling_ae'] as const,
      registers: [registry]
    })
    this.associationsRefused = new Counter({
      name: 'kidney_dicom_associations_refused_total',
      help: 'DICOM associations the node refused, by calling_ae (' + CALLING_AE_HELP + '; none before an A-ASSOCIATE-RQ) and reason: ' +
        Object.entries(ASSOCIATION_REFUSALS_BY_STAGE).map(([stage, reasons]) => `${stage} (${reasons.join(', ')})`).join('; ') + '.',
      labelNames: ['calling_ae', 'reason'] as const,
      registers: [registry]
    })
    this.commandsRefused = new Counter({
      name: 'kidney_dicom_commands_refused_total',
      help: 'DIMSE requests the node answered without performing them, by calling_ae (' + CALLING_AE_HELP + '), command ' +
        '(C-STORE, C-FIND, N-ACTION, ...; other for a field no DIMSE request has) and reason: ' +
        Object.entries(COMMAND_REFUSALS).map(([reason, what]) => `${reason} (${what})`).join(', ') + '.',
      labelNames: ['calling_ae', 'command', 'reason'] as const,
      registers: [registry]
    })
    this.contextsRejected = new Counter({
      name: 'kidney_dicom_contexts_rejected_total',
      help: 'Presentation contexts the node refused at association, by calling_ae (' + CALLING_AE_HELP + ') and reason: ' +
        Object.entries(CONTEXT_REJECTIONS).map(([reason, what]) => `${reason} (${what})`).join(', ') + '.',
      labelNames: ['calling_ae', 'reason'] as const,
      registers: [registry]
    })
    this.exportRefusalsAtZero()
  }

  /**
   * A labelled counter is exported from its first increment, and Prometheus' increase() sees no increase in a series'
   * first sample: the first refusal of a listed sender after every start would raise no alert. So these series are
   * exported at 0 from the start: each calling_ae label (the listed titles, unlisted, none) by every refusal reason,
   * and by the C-STORE outcomes of WATCHED_INSTANCE_OUTCOMES, bounded by DICOM_ALLOWED_AES. A refusal for a file's
   * content (CORRUPT_DICOM, ...; any typed error's code) is not among them: the alert's second term sees its new series.
   */
  private exportRefusalsAtZero (): void {
    for (const callingAe of [...this.allowedAes, 'unlisted', 'none']) {
      for (const reason of ASSOCIATION_REFUSALS) this.associationsRefused.inc({ calling_ae: callingAe, reason }, 0)
      for (const outcome of WATCHED_INSTANCE_OUTCOMES) this.instances.inc({ route: DIMSE_ROUTE, outcome, calling_ae: callingAe }, 0)
    }
  }

  /**
   * The calling_ae label of a DICOM peer. The peer chooses its title (any 16 characters), so only the titles listed in
   * DICOM_ALLOWED_AES are labels of their own and every other is `unlisted`: a peer trying titles adds no series. With
   * DICOM_ALLOWED_AES empty (any title accepted) every title is `unlisted`, never the first ones seen: a peer could take
   * those places before the PACS does. `none`: no title, an instance over STOW-RS or a connection refused before its
   * A-ASSOCIATE-RQ.
   */
  callingAeLabel (callingAe: string | undefined): string {
    if (callingAe === undefined) return 'none'
    return this.allowedAes.includes(callingAe) ? callingAe : 'unlisted'
  }

  /** One DICOM association refused for `reason` (dicom-node/events.ts). */
  associationRefused (reason: string, callingAe: string | undefined): void {
    this.associationsRefused.inc({ calling_ae: this.callingAeLabel(callingAe), reason })
  }

  /** One DIMSE request (`command`: requestName in dicom-node/dimse.ts) answered without being performed. */
  commandRefused (command: string, reason: CommandRefusal, callingAe: string | undefined): void {
    this.commandsRefused.inc({ calling_ae: this.callingAeLabel(callingAe), command, reason })
  }

  /** One presentation context refused at association. */
  contextRejected (reason: ContextRejection, callingAe: string | undefined): void {
    this.contextsRejected.inc({ calling_ae: this.callingAeLabel(callingAe), reason })
  }

  /** One DICOM instance received on `route`: `stored`, or the refusal's code. */
  instance (route: string, outcome: string, callingAe: string | undefined): void {
    this.instances.inc({ route, outcome, calling_ae: this.callingAeLabel(callingAe) })
  }
}
