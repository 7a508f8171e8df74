/** Columns of `predictions` as written, with the types json_to_recordset reads them as (see record.ts). */
const PREDICTION_COLUMNS: Array<[string, string]> = [
  ['id', 'uuid'], ['created_at', 'timestamptz'], ['caller', 'text'], ['route', 'text'], ['request_id', 'text'],
  ['input_sha256', 'text'], ['input_bytes', 'integer'], ['input_format', 'text'], ['upload_file', 'text'],
  ['study_instance_uid', 'text'], ['series_instance_uid', 'text'], ['sop_instance_uid', 'text'],
  ['instance_number', 'integer'], ['slice_position', 'double precision'], ['model_name', 'text'], ['model_version', 'text'],
  ['model_sha256', 'text'], ['threshold', 'double precision'], ['temperature', 'double precision'], ['prediction', 'text'],
  ['probability_normal', 'double precision'], ['probability_stone', 'double precision'], ['confidence_band', 'text'],
  ['timings', 'json'], ['cam', 'text'], ['cam_classes', 'integer'], ['cam_height', 'integer'], ['cam_width', 'integer'],
  ['answer', 'json'], ['slices', 'integer']
]
const AUDIT_COLUMNS: Array<[string, string]> = [
  ['created_at', 'timestamptz'], ['caller', 'text'], ['method', 'text'], ['route', 'text'], ['status', 'integer'],
  ['code', 'text'], ['request_id', 'text'], ['file_index', 'integer']
]

/** One statement for any number of rows: the rows arrive as one JSON array parameter (prepared once per connection). */
function insertFromJson (table: string, columns: Array<[string, string]>, convert: Record<string, string> = {}): string {
  const names = columns.map(([name]) => name)
  return `INSERT INTO ${table} (${names.join(', ')}) SELECT ${names.map((n) => convert[n] ?? n).join(', ')} ` +
    `FROM json_to_recordset($1::json) AS r(${columns.map(([n, type]) => `${n} ${type}`).join(', ')})`
}

export const INSERT_PREDICTIONS = insertFromJson('predictions', PREDICTION_COLUMNS, { cam: "decode(cam, 'base64')" })
export const INSERT_AUDIT_EVENTS = insertFromJson('audit_events', AUDIT_COLUMNS)
const FAILED_INSTANCE_COLUMNS: Array<[string, string]> = [
  ['created_at', 'timestamptz'], ['caller', 'text'], ['route', 'text'], ['request_id', 'text'], ['study_instance_uid', 'text'],
  ['series_instance_uid', 'text'], ['sop_instance_uid', 'text'], ['status', 'integer'], ['code', 'text']
]
export const INSERT_FAILED_INSTANCES = insertFromJson('failed_instances', FAILED_INSTANCE_COLUMNS)
