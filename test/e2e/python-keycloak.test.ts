import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import { launchChromium, openPage } from '../helpers/chromium.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { decodeJwtPart, REALM, realmWith } from '../helpers/oidc.ts'

const PYTHON = '/usr/bin/python3'
const CONFIDENTIAL_SECRET = 'python-keycloak-secret-0123'

/**
 * The requests python-keycloak 5 (KeycloakOpenID) sends, reproduced with python3-requests as it sends them
 * (python-keycloak itself is not packaged here): a requests.Session whose `auth` adds nothing, one retry
 * adapter, form bodies from dicts (with its empty `code` and `redirect_uri` in the password grant), the secret
 * in the form for a confidential client. Each answer is recorded with the exception class python-keycloak's
 * raise_error_from_response would raise for it (401 → KeycloakAuthenticationError).
 */
const CLIENT = String.raw`
import json, os, sys, time
import requests
from requests.adapters import HTTPAdapter
from urllib.parse import urljoin

server_url = os.environ['SERVER_URL'] + '/'
realm = os.environ['REALM']
client_id = os.environ['CLIENT_ID']
client_secret_key = os.environ.get('CLIENT_SECRET') or None

s = requests.Session()
s.auth = lambda x: x
for protocol in ('https://', 'http://'):
    adapter = HTTPAdapter(max_retries=1)
    allowed = set(adapter.max_retries.allowed_methods)
    allowed.add('POST')
    adapter.max_retries.allowed_methods = frozenset(allowed)
    s.mount(protocol, adapter)
headers = {}

def url(path):
    return urljoin(server_url, path.format(**{'realm-name': realm}))

def add_secret(payload):
    if client_secret_key:
        payload['client_secret'] = client_secret_key
    return payload

def outcome(response, expected=(200, 201, 204)):
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code in expected:
        raised = None
    elif response.status_code == 401:
        raised = 'KeycloakAuthenticationError'
    else:
        raised = 'KeycloakPostError'
    return {'status': response.status_code, 'body': body, 'raised': raised, 'pragma': response.headers.get('Pragma'), 'challenge': response.headers.get('WWW-Authenticate')}

def token(username='', password='', grant_type='password', code='', redirect_uri='', scope='openid', **extra):
    payload = {'username': username, 'password': password, 'client_id': client_id, 'grant_type': grant_type,
               'code': code, 'redirect_uri': redirect_uri, 'scope': scope}
    payload.update(extra)
    payload = add_secret(payload)
    h = dict(headers, **{'Content-Type': 'application/x-www-form-urlencoded'})
    return s.post(url('realms/{realm-name}/protocol/openid-connect/token'), data=payload, headers=h, timeout=60)

def refresh_token(refresh_token):
    payload = add_secret({'client_id': client_id, 'grant_type': 'refresh_token', 'refresh_token': refresh_token})
    h = dict(headers, **{'Content-Type': 'application/x-www-form-urlencoded'})
    return s.post(url('realms/{realm-name}/protocol/openid-connect/token'), data=payload, headers=h, timeout=60)

def userinfo(token):
    h = dict(headers, Authorization='Bearer ' + token)
    return s.get(url('realms/{realm-name}/protocol/openid-connect/userinfo'), headers=h, timeout=60)

def introspect(token):
    payload = add_secret({'client_id': client_id, 'token': token})
    return s.post(url('realms/{realm-name}/protocol/openid-connect/token/introspect'), data=payload, headers=headers, timeout=60)

def logout(refresh_token):
    payload = add_secret({'client_id': client_id, 'refresh_token': refresh_token})
    return s.post(url('realms/{realm-name}/protocol/openid-connect/logout'), data=payload, headers=headers, timeout=60)

def device(scope=''):
    payload = add_secret({'client_id': client_id, 'scope': scope})
    return s.post(url('realms/{realm-name}/protocol/openid-connect/auth/device'), data=payload, headers=headers, timeout=60)
`

const REQUESTS = `${CLIENT}
results = {}
login = token(os.environ['USER'], os.environ['PASSWORD'])
results['token'] = outcome(login)
tokens = login.json()
results['wrong_password'] = outcome(token(os.environ['USER'], 'wrong-password'))
results['unknown_user'] = outcome(token('nobody', 'wrong-password'))
results['no_password'] = outcome(token(os.environ['USER']))
refreshed = refresh_token(tokens['refresh_token'])
results['refresh_token'] = outcome(refreshed)
results['refresh_bad'] = outcome(refresh_token('not-a-token'))
results['userinfo'] = outcome(userinfo(refreshed.json()['access_token']))
results['userinfo_bad'] = outcome(userinfo(tokens['access_token'][:-4] + 'AAAA'))
results['introspect'] = outcome(introspect(refreshed.json()['access_token']))
results['introspect_refresh'] = outcome(introspect(refreshed.json()['refresh_token']))
results['introspect_bad'] = outcome(introspect('not-a-token'))
results['logout'] = outcome(logout(refreshed.json()['refresh_token']), expected=(204,))
results['introspect_after_logout'] = outcome(introspect(refreshed.json()['access_token']))
results['logout_again'] = outcome(logout(refreshed.json()['refresh_token']), expected=(204,))
results['logout_bad'] = outcome(logout('not-a-token'), expected=(204,))
print(json.dumps(results))
`

/** RFC 8628 from a script: start, show the code, poll at the interval until the user approved in a browser. */
const DEVICE = `${CLIENT}
started = device()
print(json.dumps(outcome(started)), flush=True)
body = started.json()
polls = []
interval = body['interval']
deadline = time.time() + body['expires_in']
while time.time() < deadline:
    time.sleep(interval)
    answer = token(grant_type='urn:ietf:params:oauth:grant-type:device_code', device_code=body['device_code'])
    polls.append(outcome(answer))
    if answer.status_code == 400 and answer.json().get('error') == 'slow_down':
        interval += 5
    elif answer.status_code != 400 or answer.json().get('error') != 'authorization_pending':
        break
print(json.dumps(polls), flush=True)
`

describe('python-keycloak\'s requests against the realm', { skip: !existsSync(PYTHON) && 'Debian python3 is not installed' }, () => {
  let gw: TestGateway
  let browser: Browser

  before(async () => {
    gw = await startGateway({
      config: {
        realms: realmWith([
            { client_id: 'py-public', public_client: true, direct_access_grants: true, device_authorization_grant: true },
            { client_id: 'py-confidential', public_client: false, secret: CONFIDENTIAL_SECRET, direct_access_grants: true },
        ]),
      },
    })
    await gw.app.accounts.create({ username: 'alice', password: 'alice-password', email: 'alice@example.com', firstName: 'Alice' })
  })
  after(async () => {
    await browser?.close()
    await gw?.close()
  })

  const env = (clientId: string, secret = '') => ({ ...process.env, SERVER_URL: gw.url, REALM, CLIENT_ID: clientId, CLIENT_SECRET: secret, USER: 'alice', PASSWORD: 'alice-password' })

  for (const [clientId, secret] of [['py-public', ''], ['py-confidential', CONFIDENTIAL_SECRET]] as const) {
    it(`gets Keycloak's statuses and bodies for token, refresh_token, userinfo, introspect and logout (${clientId})`, async () => {
      const run = await promisify(execFile)(PYTHON, ['-c', REQUESTS], { env: env(clientId, secret), encoding: 'utf8', timeout: 60_000 })
      const r = JSON.parse(run.stdout)

      assert.equal(r.token.status, 200)
      assert.equal(r.token.pragma, 'no-cache')
      assert.deepEqual(Object.keys(r.token.body), ['access_token', 'expires_in', 'refresh_expires_in', 'refresh_token', 'token_type', 'id_token', 'not-before-policy', 'session_state', 'scope'])
      assert.equal(r.token.body.scope, 'openid profile email')
      assert.equal(decodeJwtPart(r.token.body.refresh_token, 1).typ, 'Refresh')

      for (const name of ['wrong_password', 'unknown_user', 'no_password']) {
        // Keycloak 26.6 and later: 400, as RFC 6749 §5.2 has it (401 before), so python-keycloak raises its KeycloakPostError.
        assert.equal(r[name].status, 400, name)
        assert.deepEqual(r[name].body, { error: 'invalid_grant', error_description: 'Invalid user credentials' }, name)
        assert.equal(r[name].raised, 'KeycloakPostError', name)
      }

      assert.equal(r.refresh_token.status, 200)
      assert.equal(r.refresh_token.body.session_state, r.token.body.session_state)
      assert.equal(r.refresh_bad.status, 400)
      assert.deepEqual(r.refresh_bad.body, { error: 'invalid_grant', error_description: 'Invalid refresh token' })
      assert.equal(r.refresh_bad.raised, 'KeycloakPostError')

      assert.equal(r.userinfo.status, 200)
      assert.equal(r.userinfo.body.preferred_username, 'alice')
      assert.equal(r.userinfo.body.email, 'alice@example.com')
      assert.equal(r.userinfo_bad.status, 401)
      // Keycloak's UserInfoEndpoint answers its errors in the challenge alone (OAuth2Error `json(false)`).
      assert.equal(r.userinfo_bad.body, '')
      assert.equal(r.userinfo_bad.challenge, `Bearer realm="${REALM}", error="invalid_token", error_description="Token verification failed"`)

      assert.equal(r.introspect.status, 200)
      assert.equal(r.introspect.body.active, true)
      assert.equal(r.introspect.body.username, 'alice')
      assert.equal(r.introspect.body.client_id, clientId)
      assert.equal(r.introspect_refresh.body.active, true)
      assert.deepEqual(r.introspect_bad.body, { active: false })

      assert.equal(r.logout.status, 204)
      assert.equal(r.logout.raised, null)
      assert.deepEqual(r.introspect_after_logout.body, { active: false })
      assert.equal(r.logout_again.status, 204, 'a session that already ended is no error')
      assert.equal(r.logout_bad.status, 400)
      assert.deepEqual(r.logout_bad.body, { error: 'invalid_grant', error_description: 'Invalid refresh token' })
    })
  }

  it('answers a device code that polls faster than its interval slow_down', async () => {
    const run = await promisify(execFile)(PYTHON, ['-c', `${CLIENT}
code = device().json()['device_code']
print(json.dumps([outcome(token(grant_type='urn:ietf:params:oauth:grant-type:device_code', device_code=code)) for _ in range(2)]))`], { env: env('py-public'), encoding: 'utf8' })
    assert.deepEqual(JSON.parse(run.stdout).map((o: { body: unknown }) => o.body), [
      { error: 'authorization_pending', error_description: 'The authorization request is still pending' },
      { error: 'slow_down', error_description: 'Slow down' },
    ])
  })

  it('runs the device grant from a script: start, approve in the browser, poll, get tokens', async () => {
    browser = await launchChromium()
    const script = spawn(PYTHON, ['-c', DEVICE], { env: env('py-public'), stdio: ['ignore', 'pipe', 'inherit'] })
    const lines = createInterface({ input: script.stdout })[Symbol.asyncIterator]()
    const nextLine = async () => JSON.parse(String((await lines.next()).value))
    const started = await nextLine()
    assert.equal(started.status, 200)
    assert.deepEqual(Object.keys(started.body), ['device_code', 'user_code', 'verification_uri', 'verification_uri_complete', 'expires_in', 'interval'])
    assert.match(started.body.user_code, /^[A-Z]{4}-[A-Z]{4}$/)
    assert.equal(started.body.verification_uri, `${gw.url}/realms/${REALM}/device`)
    assert.equal(started.body.expires_in, 600)
    assert.equal(started.body.interval, 5)

    const { page, context, problems } = await openPage(browser)
    try {
      await page.goto(started.body.verification_uri)
      await page.fill('input[name=user_code]', started.body.user_code.toLowerCase().replace('-', ''))
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.getByText(started.body.user_code).waitFor()
      await page.getByRole('button', { name: 'Continue' }).click()
      await page.waitForURL((url) => url.pathname.startsWith(`/realms/${REALM}/login-actions/`))
      await page.fill('#username', 'alice')
      await page.fill('#password', 'alice-password')
      await page.click('button[type=submit]')
      await page.getByRole('heading', { name: 'Device login complete' }).waitFor()
      assert.deepEqual(problems, [])
    } finally {
      await context.close()
    }

    const polls = await nextLine()
    const last = polls.at(-1)
    assert.equal(last.status, 200)
    assert.equal(decodeJwtPart(last.body.access_token, 1).preferred_username, 'alice')
    assert.equal(decodeJwtPart(last.body.refresh_token, 1).typ, 'Refresh')
    for (const pending of polls.slice(0, -1)) {
      assert.equal(pending.status, 400)
      assert.deepEqual(pending.body, { error: 'authorization_pending', error_description: 'The authorization request is still pending' })
    }
    const again = await promisify(execFile)(PYTHON, ['-c', `${CLIENT}\nprint(json.dumps(outcome(token(grant_type='urn:ietf:params:oauth:grant-type:device_code', device_code=${JSON.stringify(started.body.device_code)}))))`], { env: env('py-public'), encoding: 'utf8' })
    assert.deepEqual(JSON.parse(again.stdout).body, { error: 'invalid_grant', error_description: 'Device code not valid' })
  })
})
