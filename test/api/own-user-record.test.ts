import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { login, setCookie, withCsrf } from '../helpers/session.ts'

/**
 * The platform lets every user change their own record through users/{id}/ (django-ansible-base's
 * AnsibleBaseUserPermissions asks can_change_user, which answers yes for request.user == obj): a user edits
 * themselves there as they do at me/ and me/password/, under the same rules.
 */
describe('a user changing their own record at users/{id}/', () => {
  let gw: TestGateway
  let hana: number
  let ivan: number
  let dirUser: number
  const send = (method: string, path: string, body: unknown, headers: Record<string, string>) =>
    gw.fetch(path, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const own = (id: number) => `/api/gateway/v1/users/${id}/`

  before(async () => {
    gw = await startGateway()
    hana = (await gw.app.accounts.create({ username: 'hana', password: 'hana-password', email: 'hana@example.com' })).id
    ivan = (await gw.app.accounts.create({ username: 'ivan', password: 'ivan-password', email: 'ivan@example.com' })).id
    dirUser = (await gw.app.accounts.create({ username: 'dir-user', source: 'ldap', external: true })).id
    assert.equal((await send('POST', '/api/gateway/v1/organizations/', { name: 'Elsewhere' }, adminAuth)).status, 201)
  })
  after(() => gw.close())

  it('changes their names and e-mail address, with PATCH and with PUT', async () => {
    const auth = { authorization: basic('hana', 'hana-password') }
    const patched = await send('PATCH', own(hana), { first_name: 'Hana', last_name: 'Example', email: 'hana@new.example' }, auth)
    assert.equal(patched.status, 200)
    const body = await json(patched)
    assert.deepEqual([body.first_name, body.last_name, body.email, body.is_superuser], ['Hana', 'Example', 'hana@new.example', false])
    // What the collection's user module sends: the whole record, with the flags and the username as they are.
    const put = await send('PUT', own(hana), { username: 'hana', first_name: 'H.', last_name: 'Example', email: 'hana@new.example', is_superuser: false, is_active: true }, auth)
    assert.equal(put.status, 200)
    assert.equal((await gw.store.users.findByUsername('hana'))!.firstName, 'H.')
  })

  it('never raises their own flags, renames them, or changes another user', async () => {
    const auth = { authorization: basic('hana', 'hana-password') }
    for (const [bad, code] of [
      [{ is_superuser: true }, 'permission_denied'],
      [{ username: 'hana2' }, 'permission_denied'],
      [{ organizations: ['Elsewhere'] }, 'permission_denied'],
      [{ is_active: false }, 'self_lockout'],
    ] as const) {
      const refused = await send('PATCH', own(hana), { first_name: 'Changed', ...bad }, auth)
      assert.equal(refused.status, 403, JSON.stringify(bad))
      assert.equal((await json(refused)).code, code, JSON.stringify(bad))
    }
    // ivan, in no organization hana sees, is not found, as the platform answers for a user the caller cannot see.
    assert.equal((await send('PATCH', own(ivan), { first_name: 'Mallory' }, auth)).status, 404)
    const admin = (await gw.store.users.findByUsername('admin'))!
    const visible = await send('PATCH', own(admin.id), { first_name: 'Mallory' }, auth)
    assert.equal(visible.status, 403)
    assert.equal((await json(visible)).code, 'permission_denied')
    assert.equal((await gw.store.users.findByUsername('admin'))!.firstName, admin.firstName)
    const hanaNow = (await gw.store.users.findByUsername('hana'))!
    assert.deepEqual([hanaNow.username, hanaNow.isSuperuser, hanaNow.isActive, hanaNow.firstName], ['hana', false, true, 'H.'])
    assert.equal((await gw.store.users.findByUsername('ivan'))!.firstName, '')
  })

  it('refuses an e-mail address another account signs in with, as me/ does', async () => {
    const refused = await send('PATCH', own(hana), { email: 'IVAN@example.com' }, { authorization: basic('hana', 'hana-password') })
    assert.equal(refused.status, 400)
    assert.ok((await json(refused)).errors.email)
  })

  it('leaves a directory account\'s details to its source', async () => {
    const user = (await gw.store.users.findByUsername('dir-user'))!
    const { value } = await gw.app.tokens.issue(user, { scope: 'write' })
    const refused = await send('PATCH', own(dirUser), { first_name: 'X' }, { authorization: `Bearer ${value}` })
    assert.equal(refused.status, 403)
    assert.equal((await json(refused)).code, 'managed_by_source')
    assert.equal((await gw.store.users.findByUsername('dir-user'))!.firstName, '')
  })

  it('changes the password only with the current one and the password policy, ending the other sessions', async () => {
    const auth = { authorization: basic('hana', 'hana-password') }
    const token = { authorization: `Bearer ${(await gw.app.tokens.issue((await gw.store.users.findByUsername('hana'))!, { scope: 'write' })).value}` }
    const here = await login(gw, 'hana', 'hana-password')
    for (const [credential, headers] of [['token', token], ['session', withCsrf(here)]] as const) {
      const without = await send('PATCH', own(hana), { password: 'hana-new-password' }, headers)
      assert.equal(without.status, 400, credential)
      assert.ok('current_password' in (await json(without)).errors, credential)
    }
    const wrong = await send('PATCH', own(hana), { password: 'hana-new-password', current_password: 'guess' }, auth)
    assert.equal(wrong.status, 400)
    assert.ok('current_password' in (await json(wrong)).errors)
    const weak = await send('PATCH', own(hana), { password: 'password1', current_password: 'hana-password' }, auth)
    assert.equal(weak.status, 400)
    assert.ok('password' in (await json(weak)).errors)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 200, 'nothing changed yet')

    const elsewhere = await login(gw, 'hana', 'hana-password')
    const changed = await gw.fetch(own(hana), {
      method: 'PATCH',
      headers: { ...withCsrf(here), 'content-type': 'application/json' },
      body: JSON.stringify({ password: 'hana-new-password', current_password: 'hana-password' }),
    })
    assert.equal(changed.status, 200)
    assert.equal((await json(changed)).password, '$encrypted$', 'the password is never shown, only that there is one')
    const fresh = setCookie(changed, 'gateway_sessionid')!.value
    assert.ok(fresh && fresh !== here.sessionId)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: `gateway_sessionid=${fresh}` } })).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { cookie: elsewhere.cookie } })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('hana', 'hana-new-password') } })).status, 200)
  })

  it("takes a new password without current_password when the request's basic credentials are the current one, as the collection's user module sends it", async () => {
    const jade = (await gw.app.accounts.create({ username: 'jade', password: 'jade-password-long' })).id
    const auth = { authorization: basic('jade', 'jade-password-long') }
    // A second run of the module sends the password the account has: nothing changes.
    assert.equal((await send('PUT', own(jade), { username: 'jade', password: 'jade-password-long', is_superuser: false }, auth)).status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 200)
    const weak = await send('PATCH', own(jade), { password: 'password1' }, auth)
    assert.equal(weak.status, 400)
    assert.ok('password' in (await json(weak)).errors)
    const changed = await send('PUT', own(jade), { username: 'jade', password: 'jade-new-password-long', is_superuser: false }, auth)
    assert.equal(changed.status, 200)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: auth })).status, 401)
    assert.equal((await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: basic('jade', 'jade-new-password-long') } })).status, 200)
  })
})
