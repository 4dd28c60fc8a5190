import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, json, startGateway, type TestGateway } from '../helpers/gateway.ts'

const SETTINGS = '/api/gateway/v1/settings/all/'

describe('the settings API reading switches and counts as Django REST framework\'s BooleanField and IntegerField do', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  /** A PATCH with the body as written (`1300.0` stays a JSON number with a fraction). */
  const patch = (body: string, type = 'application/json') =>
    gw.fetch(SETTINGS, { method: 'PATCH', headers: { ...adminAuth, 'content-type': type }, body })
  const shown = async () => json(await gw.fetch(SETTINGS, { headers: adminAuth }))

  it('takes true and false in every spelling BooleanField does, strings compared without case', async () => {
    const cases: [string, boolean][] = [
      ['true', true], ['false', false], ['"true"', true], ['"false"', false], ['"True"', true], ['"False"', false],
      ['"TRUE"', true], ['"FALSE"', false], ['"1"', true], ['"0"', false], ['1', true], ['0', false],
      ['"yes"', true], ['"no"', false], ['"on"', true], ['"off"', false], ['"Y"', true], ['"N"', false],
      ['"t"', true], ['"f"', false], ['1.0', true], ['0.0', false], ['"yEs"', true], ['"oFF"', false],
    ]
    for (const [value, expected] of cases) {
      // From the opposite value, so that each case is seen to change the setting.
      assert.equal((await patch(JSON.stringify({ allow_external_users_to_create_oauth2_tokens: !expected }))).status, 200)
      const response = await patch(`{"allow_external_users_to_create_oauth2_tokens": ${value}}`)
      assert.equal(response.status, 200, `${value}: ${await response.clone().text()}`)
      assert.equal((await json(response)).allow_external_users_to_create_oauth2_tokens, expected, value)
      assert.equal((await shown()).allow_external_users_to_create_oauth2_tokens, expected, `${value} saved`)
    }
  })

  it('takes a whole number as a string or with a zero fraction, as IntegerField does', async () => {
    const cases: [string, number][] = [
      ['"1200"', 1200], ['1300.0', 1300], ['"1400.0"', 1400], ['" 1500 "', 1500], ['"+1600"', 1600], ['"1_700"', 1700], ['"1800.00 "', 1800],
    ]
    for (const [value, expected] of cases) {
      const response = await patch(`{"session_cookie_age": ${value}}`)
      assert.equal(response.status, 200, `${value}: ${await response.clone().text()}`)
      assert.equal((await json(response)).session_cookie_age, expected, value)
      assert.equal((await shown()).session_cookie_age, expected, `${value} saved`)
    }
  })

  it('reads the platform\'s names the same way, and takes both names given as a string and a number that agree', async () => {
    const response = await patch(JSON.stringify({ SESSION_COOKIE_AGE: '2000', session_cookie_age: 2000, OAUTH2_PROVIDER: { ACCESS_TOKEN_EXPIRE_SECONDS: '3600' }, ALLOW_OAUTH2_FOR_EXTERNAL_USERS: 'off' }))
    assert.equal(response.status, 200, await response.clone().text())
    const settings = await shown()
    assert.equal(settings.session_cookie_age, 2000)
    assert.equal(settings.oauth2_access_token_expire_seconds, 3600)
    assert.equal(settings.allow_external_users_to_create_oauth2_tokens, false)
  })

  it('takes a form, whose every value is a string', async () => {
    const response = await patch('session_cookie_age=2100&login_lockout_spares_clean_addresses=false', 'application/x-www-form-urlencoded')
    assert.equal(response.status, 200, await response.clone().text())
    const settings = await shown()
    assert.equal(settings.session_cookie_age, 2100)
    assert.equal(settings.login_lockout_spares_clean_addresses, false)
  })

  it('refuses anything else by field in Django REST framework\'s words, saving nothing of the request', async () => {
    const before = await shown()
    const cases: [string, string, string][] = [
      ['session_cookie_age', '1200.5', 'A valid integer is required.'],
      ['session_cookie_age', '"1200.5"', 'A valid integer is required.'],
      ['session_cookie_age', '"12a"', 'A valid integer is required.'],
      ['session_cookie_age', '"1e3"', 'A valid integer is required.'],
      ['session_cookie_age', '""', 'A valid integer is required.'],
      ['session_cookie_age', '"1__200"', 'A valid integer is required.'],
      // Python's int() reads digits of any script; only ASCII ones are taken here (docs/api.md).
      ['session_cookie_age', '"\u0661\u0662\u0660\u0660"', 'A valid integer is required.'],
      ['session_cookie_age', 'true', 'A valid integer is required.'],
      ['session_cookie_age', '"true"', 'A valid integer is required.'],
      ['session_cookie_age', '[1200]', 'A valid integer is required.'],
      ['session_cookie_age', 'null', 'This field may not be null.'],
      ['session_cookie_age', '"59"', 'Ensure this value is greater than or equal to 60.'],
      // Past the safe integers too: the setting's own bound alone, as IntegerField says it.
      ['login_address_window_seconds', '"99999999999999999999"', 'Ensure this value is less than or equal to 86400.'],
      ['session_cookie_age', '9007199254740993', 'Ensure this value is less than or equal to 2592000.'],
      ['session_cookie_age', `"${'1'.repeat(1001)}"`, 'String value too large.'],
      ['allow_external_users_to_create_oauth2_tokens', '"maybe"', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '""', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '"null"', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '2', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '0.5', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '" true"', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', '{}', 'Must be a valid boolean.'],
      ['allow_external_users_to_create_oauth2_tokens', 'null', 'This field may not be null.'],
    ]
    for (const [name, value, message] of cases) {
      const response = await patch(`{"${name}": ${value}, "login_lockout_seconds": 120}`)
      assert.equal(response.status, 400, `${name}: ${value}`)
      const error = await json(response)
      assert.equal(error.code, 'invalid')
      assert.deepEqual(error.errors, { [name]: [message] }, `${name}: ${value.slice(0, 40)}`)
    }
    const aliased = await patch(JSON.stringify({ OAUTH2_PROVIDER: { ACCESS_TOKEN_EXPIRE_SECONDS: '1h' } }))
    assert.equal(aliased.status, 400)
    assert.deepEqual((await json(aliased)).errors, { 'OAUTH2_PROVIDER.ACCESS_TOKEN_EXPIRE_SECONDS': ['A valid integer is required.'] })
    assert.deepEqual(await shown(), before)
  })
})
