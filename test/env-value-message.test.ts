import t, { type Test } from 'tap'
import { loadConfig } from '../plugins/app/config.js'

/** Each [variable, value, message]: that value alone stops start-up with exactly that message. */
function refusesEach (t: Test, cases: Array<[string, string, string]>): void {
  for (const [name, value, message] of cases) t.throws(() => loadConfig({ [name]: value }), { message }, `${name}=${value}`)
}

// A bad value stops the service with one line naming the variable. TypeBox's own words were no help to the person
// who typed it: AUTH_MODE=apikey was "Expected union value", UPLOAD_RETENTION=1w "Expected string to match
// '^(none|[0-9]+[smhd])$'", and a FHIR_SERVER_URL without its scheme was repeated whole, password and all.
t.test('a value outside a list names the list; one that fails a pattern says what the variable takes', async (t) => {
  refusesEach(t, [
    ['AUTH_MODE', 'apikey', 'Invalid environment variable AUTH_MODE="apikey": give one of none, api-key, jwt, any'],
    ['LOG_LEVEL', 'verbose', 'Invalid environment variable LOG_LEVEL="verbose": give one of fatal, error, warn, info, debug, trace, silent'],
    ['RECORDS_STORE', 'sqlite', 'Invalid environment variable RECORDS_STORE="sqlite": give one of pglite, postgres, off'],
    ['UPLOAD_RETENTION', '1w', 'Invalid environment variable UPLOAD_RETENTION="1w": give an age (30m, 24h, 7d) or none'],
    ['RECORD_RETENTION', '1y', 'Invalid environment variable RECORD_RETENTION="1y": give an age (90d, 12h) or forever'],
    ['DICOM_MODALITIES', 'ct', 'Invalid environment variable DICOM_MODALITIES="ct": give Modality values in capitals, comma-separated (CT, or CT,MR)']
  ])
})

// PORT=eighty was "Expected integer", MAX_FILE_BYTES=-1 "Expected integer to be greater or equal to 1".
t.test('a number outside its range, or no number, says the range the variable takes', async (t) => {
  refusesEach(t, [
    ['PORT', 'eighty', 'Invalid environment variable PORT="eighty": give a whole number from 0 to 65535'],
    ['PORT', '3000.5', 'Invalid environment variable PORT="3000.5": give a whole number from 0 to 65535'],
    ['MAX_FILE_BYTES', '0', 'Invalid environment variable MAX_FILE_BYTES=0: give a whole number of at least 1'],
    ['SLOW_UPLOADS_SHARE', 'half', 'Invalid environment variable SLOW_UPLOADS_SHARE="half": give a number above 0 and at most 1'],
    ['MODEL_SCALE', '-2', 'Invalid environment variable MODEL_SCALE=-2: give a number above 0'],
    ['DICOM_WINDOW_CENTER', 'soft', 'Invalid environment variable DICOM_WINDOW_CENTER="soft": give a number'],
    ['RECORDS_REQUIRED', 'maybe', 'Invalid environment variable RECORDS_REQUIRED="maybe": give true or false']
  ])
})

t.test('a FHIR_SERVER_URL without http:// or https:// is refused without repeating it', async (t) => {
  t.throws(() => loadConfig({ FHIR_SERVER_URL: 'admin:s3cret@fhir.hospital.example/fhir' }), {
    message: 'Invalid environment variable FHIR_SERVER_URL (its value is not repeated: it may hold a password): give the FHIR base URL, starting with http:// or https://'
  })
})
