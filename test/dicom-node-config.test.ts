import t from 'tap'
import { configRefusal } from './helper.js'

// The node compares DICOM_AE_TITLE and DICOM_ALLOWED_AES with the titles peers send, padding stripped. A value that is
// no AE title can never be sent: on the old code it was accepted, and then every association was refused as 'called
// (or calling) AE title not recognized', with nothing at start-up to say why.

const NODE_ON = { DICOM_PORT: '11112' }

t.test('DICOM_AE_TITLE and DICOM_ALLOWED_AES that are no AE titles stop start-up, naming the value', async (t) => {
  const refusal = (name: string, value: string): string =>
    `Invalid environment variable ${name}: ${JSON.stringify(value)} is no AE title (1 to 16 characters, no backslash or control character, not only spaces), so no peer can call with it`
  const on = (env: Record<string, string>): string => configRefusal({ ...NODE_ON, ...env })
  t.equal(on({ DICOM_ALLOWED_AES: 'PACS1, pacs.hospital.local' }), refusal('DICOM_ALLOWED_AES', 'pacs.hospital.local'), 'over 16 characters (a host name)')
  t.equal(on({ DICOM_ALLOWED_AES: 'CT\\1' }), refusal('DICOM_ALLOWED_AES', 'CT\\1'), 'a backslash')
  t.equal(on({ DICOM_AE_TITLE: '    ' }), refusal('DICOM_AE_TITLE', ''), 'only spaces')
  t.equal(on({ DICOM_AE_TITLE: 'KIDNEY\\STONE' }), refusal('DICOM_AE_TITLE', 'KIDNEY\\STONE'))
  t.equal(on({ DICOM_AE_TITLE: 'kidney.hospital.local' }), refusal('DICOM_AE_TITLE', 'kidney.hospital.local'), 'over 16 characters')
  t.equal(on({ DICOM_AE_TITLE: ' KIDNEY STONE ', DICOM_ALLOWED_AES: ' PACS 1 ,CT_2,,' }), 'accepted', 'padding and a space inside are fine')
})

// Only the node reads them. On the old code they were judged with the node off too, so a stale DICOM_ALLOWED_AES left
// in a deployment that does not run the node stopped the whole HTTP service at start-up.
t.test('with the DICOM node off (DICOM_PORT unset), DICOM_AE_TITLE and DICOM_ALLOWED_AES stop nothing', async (t) => {
  t.equal(configRefusal({ DICOM_ALLOWED_AES: 'PACS1, pacs.hospital.local' }), 'accepted', 'a host name in DICOM_ALLOWED_AES')
  t.equal(configRefusal({ DICOM_ALLOWED_AES: 'CT\\1' }), 'accepted', 'a backslash in DICOM_ALLOWED_AES')
  t.equal(configRefusal({ DICOM_AE_TITLE: '    ' }), 'accepted', 'DICOM_AE_TITLE only spaces')
  t.equal(configRefusal({ DICOM_AE_TITLE: 'kidney.hospital.local' }), 'accepted', 'DICOM_AE_TITLE over 16 characters')
})
