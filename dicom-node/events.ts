/**
 * Why the node refused an association or cut it off, in our own words (the `reason` label of
 * kidney_dicom_associations_refused_total), by when it happened: never anything the peer sent, so the label has these
 * values only. The metric's help text is built from this list. Rejected at its A-ASSOCIATE-RQ:
 * calling_ae_not_recognized (not in DICOM_ALLOWED_AES, or no AE title), called_ae_not_recognized (not DICOM_AE_TITLE),
 * protocol_version, limit_total (DICOM_MAX_ASSOCIATIONS), limit_per_ae (DICOM_MAX_ASSOCIATIONS_PER_AE). Aborted:
 * idle_timeout, pdu_timeout (a PDU not whole in time), too_slow (under DICOM_MIN_RATE_BYTES_S), protocol_error (bytes
 * that are not the protocol). Closed unanswered: too_many_connections (twice DICOM_MAX_ASSOCIATIONS).
 */
export const ASSOCIATION_REFUSALS_BY_STAGE = {
  'rejected at their A-ASSOCIATE-RQ': ['calling_ae_not_recognized', 'called_ae_not_recognized', 'protocol_version', 'limit_total', 'limit_per_ae'],
  aborted: ['idle_timeout', 'pdu_timeout', 'too_slow', 'protocol_error'],
  'closed unanswered': ['too_many_connections']
} as const
export type AssociationRefusal = typeof ASSOCIATION_REFUSALS_BY_STAGE[keyof typeof ASSOCIATION_REFUSALS_BY_STAGE][number]
export const ASSOCIATION_REFUSALS: readonly AssociationRefusal[] = Object.values(ASSOCIATION_REFUSALS_BY_STAGE).flat()

/**
 * Why the node answered a DIMSE request without performing it, with the answer (the `reason` label of
 * kidney_dicom_commands_refused_total; its help text is built from this list).
 */
export const COMMAND_REFUSALS = {
  context_not_accepted: 'sent on a presentation context not accepted at association, answered 0110',
  unrecognized_operation: 'any command but C-ECHO and C-STORE, or a C-STORE without its data set, answered 0211'
} as const
export type CommandRefusal = keyof typeof COMMAND_REFUSALS

/**
 * Why the node refused a presentation context at association (the `reason` label of kidney_dicom_contexts_rejected_total;
 * its help text is built from this list).
 */
export const CONTEXT_REJECTIONS = {
  abstract_syntax_not_supported: 'a service the node does not offer: query/retrieve, worklist, storage commitment, ...',
  transfer_syntaxes_not_supported: 'a storage SOP class in no transfer syntax the node decodes'
} as const
export type ContextRejection = keyof typeof CONTEXT_REJECTIONS

/** The details of a node event: the peer's calling AE title once its A-ASSOCIATE-RQ is read, what it refused if anything. */
export interface NodeEventDetails {
  callingAe?: string
  refusal?: AssociationRefusal
  /**
   * An instance the node refused itself, before any classification (its data set over MAX_FILE_BYTES, drained and not
   * kept): the code its ErrorComment starts with, the `outcome` of kidney_dicom_instances_total.
   */
  refusedInstance?: 'FILE_TOO_LARGE'
  /** A request answered without being performed, and its name (requestName in dimse.ts). */
  refusedCommand?: CommandRefusal
  command?: string
  /** Presentation contexts refused at association, each with its reason. */
  rejectedContexts?: Array<{ reason: ContextRejection }>
  [detail: string]: unknown
}
