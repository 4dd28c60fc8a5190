import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setProviderClock } from '../../src/oidc/provider-clock.ts'
import { json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, codeRedemption, CookieJar, REALM, realmUrl, realmWith, signedInBrowser, submitForm, tokenRequest } from '../helpers/oidc.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

// Keycloak keeps a disabled user's sessions and judges the user at a refresh (TokenManager), a code's and a device
// code's redemption (AuthorizationCodeGrantType, DeviceGrantType) and the direct grant (ValidateUsername); Gatehouse
// ends the sessions, grants and refresh tokens with the account, and answers alike.
for (const backend of ['sqlite', 'postgres'] as const) describe(`a grant whose user was disabled or deleted after it began (${backend})`, () => {
  let gw: TestGateway
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    drop = database?.drop
    gw = await startGateway({ databaseUrl: database?.url, config: { realms: realmWith([{ client_id: 'tv', public_client: true, device_authorization_grant: true }]) } })
  })
  after(async () => {
    await gw?.close()
    await drop?.()
  })

  const secret = (name: string) => `${name}-password-long`
  async function account(name: string): Promise<number> {
    return (await gw.app.accounts.create({ username: name, password: secret(name) })).id
  }
  const disable = (id: number) => gw.app.accounts.update(id, { isActive: false })
  const enable = (id: number) => gw.app.accounts.update(id, { isActive: true })
  const remove = async (id: number) => void await gw.app.accounts.delete(id)

  const refusal = (answer: { status: number; body: unknown }) => ({ status: answer.status, body: answer.body })
  const refused = (error_description: string, status = 400) => ({ status, body: { error: 'invalid_grant', error_description } })

  it('answers a refresh of a disabled user "User disabled", of a deleted one "Session not active", and their password logins as Keycloak does', async () => {
    const login = async (name: string) => (await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: name, password: secret(name) })).body.refresh_token as string
    const refresh = (token: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token })
    const password = (name: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: name, password: secret(name) })

    const disabled = await account('refresh-disabled')
    const token = await login('refresh-disabled')
    await disable(disabled)
    assert.deepEqual(refusal(await refresh(token)), refused('User disabled'))
    assert.deepEqual(refusal(await password('refresh-disabled')), refused('Account disabled'))
    // Enabled again, the token of before stays ended (its grant went with the disable).
    await gw.app.accounts.update(disabled, { isActive: true })
    assert.equal((await refresh(token)).status, 400)

    const deleted = await account('refresh-deleted')
    const deletedToken = await login('refresh-deleted')
    await remove(deleted)
    assert.deepEqual(refusal(await refresh(deletedToken)), refused('Session not active'))
    assert.deepEqual(refusal(await password('refresh-deleted')), refused('Invalid user credentials'))

  })

  it('answers an expired refresh token of a disabled user as one of an active user, as Keycloak checks the token first', async (t) => {
    const login = async (name: string) => (await tokenRequest(gw, { client_id: 'end-users', grant_type: 'password', username: name, password: secret(name) })).body.refresh_token as string
    const refresh = (token: string) => tokenRequest(gw, { client_id: 'end-users', grant_type: 'refresh_token', refresh_token: token })
    await account('expired-active')
    const disabled = await account('expired-disabled')
    const [activeToken, disabledToken] = [await login('expired-active'), await login('expired-disabled')]
    await disable(disabled)
    // Past the refresh tokens' expiry (the session's idle time).
    setProviderClock(() => Date.now() + 2 * 3600_000)
    t.after(() => setProviderClock(() => Date.now()))
    const [activeAnswer, disabledAnswer] = [await refresh(activeToken), await refresh(disabledToken)]
    assert.equal(activeAnswer.status, 400)
    assert.deepEqual(refusal(disabledAnswer), refusal(activeAnswer))
  })

  async function approvedDevice(name: string): Promise<string> {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: 'tv', scope: 'openid' }) })
    const { device_code: deviceCode, user_code: userCode } = await json(started) as { device_code: string; user_code: string }
    const jar = new CookieJar()
    const confirm = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    const done = await submitForm(gw, jar, await submitForm(gw, jar, confirm, {}), { username: name, password: secret(name) })
    assert.match(await done.response.text(), /Device login complete/)
    return deviceCode
  }
  const poll = (deviceCode: string) => tokenRequest(gw, { client_id: 'tv', grant_type: DEVICE_GRANT, device_code: deviceCode })

  it('answers the device polling for a code its user approved, then was disabled, "User disabled", then "Device code not valid", as Keycloak', async () => {
    const id = await account('dev-disabled')
    const deviceCode = await approvedDevice('dev-disabled')
    await disable(id)
    assert.deepEqual(refusal(await poll(deviceCode)), refused('User disabled'))
    // Keycloak removes the device code as it answers: the next poll, the account enabled again or not, gets nothing.
    await enable(id)
    assert.deepEqual(refusal(await poll(deviceCode)), refused('Device code not valid'))
  })

  it('refuses a device code approved before its user was disabled and enabled again, or deleted', async () => {
    for (const [name, end] of [['dev-again', async (id: number) => { await disable(id); await enable(id) }], ['dev-deleted', remove]] as const) {
      const id = await account(name)
      const deviceCode = await approvedDevice(name)
      await end(id)
      assert.deepEqual(refusal(await poll(deviceCode)), refused('Device code not valid'), name)
    }
  })

  it('answers a code redeemed after its user was disabled "User disabled", once, and one of a deleted user or of a user enabled again "Code not valid"', async () => {
    const disabled = await account('code-disabled')
    const form = await codeRedemption(gw, 'code-disabled', secret('code-disabled'))
    await disable(disabled)
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('User disabled'))
    await enable(disabled)
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('Code not valid'))

    const again = await account('code-again')
    const againForm = await codeRedemption(gw, 'code-again', secret('code-again'))
    await disable(again)
    await enable(again)
    assert.deepEqual(refusal(await tokenRequest(gw, againForm)), refused('Code not valid'))

    const deleted = await account('code-deleted')
    const deletedForm = await codeRedemption(gw, 'code-deleted', secret('code-deleted'))
    await remove(deleted)
    assert.deepEqual(refusal(await tokenRequest(gw, deletedForm)), refused('Code not valid'))
  })

  it('tells a disabled user only to the request that brings the code or device code first, not to one that brings it again or past its expiry, as Keycloak removes a code as it reads it', async (t) => {
    const id = await account('once-disabled')
    const form = await codeRedemption(gw, 'once-disabled', secret('once-disabled'))
    const deviceCode = await approvedDevice('once-disabled')
    const late = await codeRedemption(gw, 'once-disabled', secret('once-disabled'))
    await disable(id)
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('User disabled'))
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('Code not valid'))
    assert.deepEqual(refusal(await poll(deviceCode)), refused('User disabled'))
    assert.deepEqual(refusal(await poll(deviceCode)), refused('Device code not valid'))
    // Past the code's minute (the sweep has not yet deleted it): Keycloak reads its expiry before its user.
    setProviderClock(() => Date.now() + 120_000)
    t.after(() => setProviderClock(() => Date.now()))
    assert.deepEqual(refusal(await tokenRequest(gw, late)), refused('Code not valid'))
  })

  it('never brings back a grant that ended while an authorization request of its browser saved it, so that a code kept past its end stays refused', async () => {
    const user = await account('code-race')
    const { jar, authorize, verifier } = await signedInBrowser(gw, 'code-race', secret('code-race'))
    // An offline code is bound to no browser session: only its grant's end refuses it.
    const offline = new URL((await browse(gw, jar, authorize({ scope: 'openid offline_access', prompt: 'consent' }))).url).searchParams.get('code')!
    const redeem = () => tokenRequest(gw, { client_id: 'end-users', grant_type: 'authorization_code', code: offline, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier })
    // A silent sign-in reads the grant; the grant ends (as a revocation, or a login past grants_per_user_limit, ends
    // one) before that sign-in saves it again.
    const records = gw.store.oidc as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
    const original = { find: records.find!, upsert: records.upsert!, rewrite: records.rewrite! }
    let ended = false
    let redeemedMeanwhile: { status: number; body: unknown } | undefined
    records.find = async function (this: unknown, ...args: unknown[]) {
      const found = await original.find.apply(this, args) as { id: string } | undefined
      if (!ended && args[0] === 'Grant' && found) {
        ended = true
        await gw.store.oidc.endGrants([found.id])
      }
      return found
    }
    // Right after that save, before the request ends: the code is redeemed then.
    for (const name of ['upsert', 'rewrite'] as const) {
      records[name] = async function (this: unknown, ...args: unknown[]) {
        await original[name].apply(this, args)
        if (ended && !redeemedMeanwhile && (args[0] as { model: string }).model === 'Grant') redeemedMeanwhile = refusal(await redeem())
      }
    }
    try {
      await fetch(authorize({ prompt: 'none' }), { redirect: 'manual', headers: { cookie: jar.header() } })
    } finally {
      Object.assign(records, original)
    }
    assert.ok(ended)
    assert.deepEqual(redeemedMeanwhile, refused('Code not valid'))
    assert.deepEqual(refusal(await redeem()), refused('Code not valid'))
    assert.equal((await gw.store.database.db.selectFrom('oidc_records').select('id').where('model', 'in', ['Grant', 'RefreshToken']).where('account_id', '=', String(user)).execute()).length, 0)
  })

  it('answers a code without its redirect_uri, redeemed after its user was disabled, "User disabled", as Keycloak judges the user before the redirect_uri', async () => {
    const id = await account('no-redirect')
    const form = await codeRedemption(gw, 'no-redirect', secret('no-redirect'))
    form.delete('redirect_uri')
    await disable(id)
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('User disabled'))
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('Code not valid'))
  })

  it('refuses a code whose sign-in was logged out since "Code not valid"', async () => {
    await account('code-logout')
    const form = await codeRedemption(gw, 'code-logout', secret('code-logout'))
    const user = await gw.store.users.findByUsername('code-logout')
    // The administrator's "log out everywhere" for the user: its grants end, the code stays until it expires.
    await gw.app.accounts.update(user!.id, { password: 'another-password-long' })
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('Code not valid'))
  })

  it('answers another client\'s redemption of an offline code whose user was disabled "User disabled", as Keycloak judges the user before the client', async () => {
    const id = await account('other-client')
    const { jar, authorize, verifier } = await signedInBrowser(gw, 'other-client', secret('other-client'))
    // An offline code is bound to no browser session: found after the disable, its client is compared.
    const offline = new URL((await browse(gw, jar, authorize({ scope: 'openid offline_access', prompt: 'consent' }))).url).searchParams.get('code')!
    const form = { client_id: 'browser-only', grant_type: 'authorization_code', code: offline, redirect_uri: CLIENT_REDIRECT, code_verifier: verifier }
    await disable(id)
    assert.deepEqual(refusal(await tokenRequest(gw, form)), refused('User disabled'))
    // Used up by that request, it tells no more.
    const again = await tokenRequest(gw, form)
    assert.equal(again.body.error, 'invalid_grant')
    assert.notEqual(again.body.error_description, 'User disabled')
  })
})
