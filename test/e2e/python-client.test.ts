import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { loadConfigFile, demoConfigFile } from '../../src/config/load.ts'
import { startGateway, tempDir, type TestGateway } from '../helpers/gateway.ts'

/**
 * The first document's Python code, as written (token and refresh with curl through subprocess, `requests` with a
 * bearer token, HTTPBasicAuth, and a basic token header), run by Debian's python3 with python3-requests against
 * the demo configuration. Only the host name and the realm name differ from the document.
 */
const SCRIPT = String.raw`
import json
import os
import subprocess
from base64 import b64encode
from requests import post, request
from requests.auth import HTTPBasicAuth

test_url = os.environ['TEST_URL']
USER = os.environ['PLATFORM_USER']
PASSWORD = os.environ['PLATFORM_PASSWORD']
app_name = app = 'demo-app'
pipeline_name = 'forecast'
box = 'inbox'
filename = 'measurements.csv'
results = {}

res = subprocess.run(["curl", "-X", "POST",
                  f"{test_url}/realms/platform/protocol/openid-connect/token",
                  "--data-urlencode", f'client_id=end-users',
                  "--data-urlencode", 'grant_type=password',
                  "--data-urlencode", f'username={USER}',
                  "--data-urlencode", f'password={PASSWORD}'], capture_output=True)
token = json.loads(res.stdout)['access_token']
refresh_token = json.loads(res.stdout)['refresh_token']
results['token_response_keys'] = sorted(json.loads(res.stdout).keys())

res = subprocess.run(["curl", "-X", "POST",
                  f"{test_url}/realms/platform/protocol/openid-connect/token",
                  "--data-urlencode", f'client_id=end-users',
                  "--data-urlencode", 'grant_type=refresh_token',
                  "--data-urlencode", f'refresh_token={refresh_token}'],
                  capture_output=True)
token = json.loads(res.stdout)['access_token']
TOKEN = token

with open('input.json') as f:
    data = json.load(f)

res = post(f'{test_url}/{app_name}/pipelines/{pipeline_name}/trials', headers={"Authorization": f"Bearer {TOKEN}"}, json=data, allow_redirects=False)
results['bearer'] = {'status': res.status_code, 'body': res.json()}

res = post(f'{test_url}/{app_name}/pipelines/{pipeline_name}/trials',
           auth=HTTPBasicAuth(USER, PASSWORD), json=data)
results['basic'] = {'status': res.status_code, 'body': res.json()}

BASIC_TOKEN = b64encode(f'{USER}:{PASSWORD}'.encode()).decode()
res = request("POST", f"{test_url}/{app}/files/{box}/{filename}",
              data="", headers={"Authorization": f"Basic {BASIC_TOKEN}"})
results['basic_token'] = {'status': res.status_code, 'body': res.json()}

res = post(f'{test_url}/{app_name}/pipelines/{pipeline_name}/trials', headers={"Authorization": "Bearer " + TOKEN[:-4] + "AAAA"}, json=data, allow_redirects=False)
results['bad_bearer'] = {'status': res.status_code, 'body': res.json(), 'www_authenticate': res.headers.get('WWW-Authenticate')}

# The document's warning, on a service that redirects unauthenticated requests to the login page.
res = post(f'{test_url}/redirect-app/pipelines/{pipeline_name}/trials', json=data, allow_redirects=False)
results['redirect_without_following'] = {'status': res.status_code, 'location': res.headers.get('Location')}
res = post(f'{test_url}/redirect-app/pipelines/{pipeline_name}/trials', json=data)
results['redirect_followed'] = {'status': res.status_code, 'content_type': res.headers.get('Content-Type'), 'login_form': 'name="password"' in res.text}

print(json.dumps(results))
`

const PYTHON = '/usr/bin/python3'

describe('the first document\'s Python code', { skip: !existsSync(PYTHON) && 'Debian python3 is not installed' }, () => {
  let gw: TestGateway
  let dir: string
  let aliceId: number

  before(async () => {
    const demo = loadConfigFile(demoConfigFile)
    const demoApp = demo.services.find((s) => s.name === 'demo-app')!
    gw = await startGateway({
      config: { services: [...demo.services, { ...demoApp, name: 'redirect-app', prefix: '/redirect-app/', unauthenticated: 'redirect' }] },
    })
    aliceId = (await gw.app.accounts.create({ username: 'alice', password: 'alice-password' })).id
    dir = tempDir('gatehouse-python-')
    writeFileSync(join(dir, 'input.json'), JSON.stringify({ horizon: 12, series: [1, 2, 3, 5, 8] }))
  })
  after(async () => {
    await gw.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('gets and refreshes a token with curl, and calls the app with Bearer, HTTPBasicAuth and a basic token', async () => {
    // Asynchronously: the gateway runs in this process and must keep answering while Python runs.
    const run = await promisify(execFile)(PYTHON, ['-c', SCRIPT], {
      cwd: dir,
      env: { ...process.env, TEST_URL: gw.url, PLATFORM_USER: 'alice', PLATFORM_PASSWORD: 'alice-password' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const results = JSON.parse(run.stdout)
    const inputBytes = Buffer.byteLength(JSON.stringify({ horizon: 12, series: [1, 2, 3, 5, 8] }).replace(/,/g, ', ').replace(/:/g, ': '))

    assert.deepEqual(results.token_response_keys, ['access_token', 'expires_in', 'not-before-policy', 'refresh_expires_in', 'refresh_token', 'scope', 'session_state', 'token_type'])

    assert.equal(results.bearer.status, 200)
    assert.deepEqual(results.bearer.body.identity, { username: 'alice', user_id: aliceId, auth_method: 'oidc', verified: true })
    assert.equal(results.bearer.body.method, 'POST')
    assert.equal(results.bearer.body.path, '/demo-app/pipelines/forecast/trials')
    assert.equal(results.bearer.body.body_bytes, inputBytes)
    assert.equal(results.bearer.body.headers.authorization, null)

    assert.equal(results.basic.status, 200)
    assert.equal(results.basic.body.identity.auth_method, 'basic')
    assert.equal(results.basic.body.identity.username, 'alice')
    assert.equal(results.basic.body.body_bytes, inputBytes)

    assert.equal(results.basic_token.status, 200)
    assert.equal(results.basic_token.body.identity.auth_method, 'basic')
    assert.equal(results.basic_token.body.path, '/demo-app/files/inbox/measurements.csv')
    assert.equal(results.basic_token.body.body_bytes, 0)

    assert.equal(results.bad_bearer.status, 401)
    assert.equal(results.bad_bearer.body.code, 'invalid_token')
    assert.match(results.bad_bearer.www_authenticate, /Bearer/)

    assert.equal(results.redirect_without_following.status, 302)
    assert.ok(results.redirect_without_following.location.startsWith(`${gw.url}/realms/platform/protocol/openid-connect/auth?`))
    assert.equal(results.redirect_followed.status, 200)
    assert.match(results.redirect_followed.content_type, /text\/html/)
    assert.equal(results.redirect_followed.login_form, true)
  })
})
