import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import { basic, type TestGateway } from '../helpers/gateway.ts'
import { codeRedemption, decodeJwtPart, password, postToken, REALM, realmWith, SERVICE_SECRET, TO_PROVIDER, tokenRequest } from '../helpers/oidc.ts'

const Platform = 'Platform'
const CONSOLE = 'operators-console'
const REPORTS_UI = 'reports-ui'

/**
 * Client roles: a realm client's `roles`, each judged by its rules as the client's `access` rules are, at each
 * token's issue, into `resource_access` of the access token; the clients whose roles a token carries are in its `aud`.
 */
for (const backend of gatewayBackends) {
  describe(`a realm client's roles in access tokens, on ${backend.name}`, () => {
    let gw: TestGateway
    let operatorMembership: number

    before(async () => {
      gw = await backend.start({
        config: {
          realms: realmWith([
            {
              client_id: CONSOLE, public_client: true, direct_access_grants: true,
              roles: {
                operator: [{ allow: { teams: [{ organization: Platform, team: 'Operators' }] } }],
                viewer: [{ deny: { users: ['mallory'] } }, { allow: { teams: ['Operators'] } }],
                'never-held': [{ allow: { users: ['nobody-has-this-name'] } }],
                'on-site': [{ allow: { users: ['visitor'], networks: ['127.0.0.0/8', '::1'] } }],
                remote: [{ allow: { users: ['visitor'], networks: ['10.0.0.0/8'] } }],
              },
            },
            { client_id: REPORTS_UI, public_client: true, standard_flow: false, roles: {
              reader: [{ allow: { users: ['operator', 'service-account-reports'] } }],
              'reader-on-site': [{ allow: { users: ['service-account-reports'], networks: ['127.0.0.0/8', '::1'] } }],
            } },
          ]),
          // A service that takes the console's tokens only: by Keycloak's audience resolve, also other clients'
          // tokens that carry the console's roles.
          services: [{ name: 'console-api', prefix: '/console-api/', upstream: 'builtin:demo', accepts: ['oidc'], unauthenticated: '401', oidc: { realm: REALM, audiences: [CONSOLE] } }],
        },
      })
      for (const name of ['operator', 'mallory', 'outsider', 'visitor']) await gw.app.accounts.create({ username: name, password: password(name) })
      const platform = await createOrgAndTeam(gw, Platform, 'Operators')
      const membership = await grant(gw, 'operator', 'Team Member', platform.team)
      assert.equal(membership.status, 201)
      operatorMembership = membership.body.id
      assert.equal((await grant(gw, 'mallory', 'Team Member', platform.team)).status, 201)
    })
    after(() => gw.close())

    const login = async (username: string, clientId = 'end-users', extra = ''): Promise<Record<string, any>> => {
      const answer = await postToken(gw, `client_id=${clientId}&grant_type=password&username=${username}&password=${password(username)}${extra}`)
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      return answer.body
    }
    const claims = (body: Record<string, any>) => decodeJwtPart(body.access_token, 1)

    it('puts the roles whose rules allow the user in resource_access, and their clients in aud, on both paths of the password grant', async () => {
      for (const extra of ['', TO_PROVIDER]) {
        const token = claims(await login('operator', 'end-users', extra))
        assert.deepEqual(token.resource_access, {
          [CONSOLE]: { roles: ['operator', 'viewer'] },
          [REPORTS_UI]: { roles: ['reader'] },
          account: { roles: ['manage-account', 'manage-account-links', 'view-profile'] },
        }, extra)
        assert.deepEqual(token.aud, [CONSOLE, REPORTS_UI, 'account'], extra)
        assert.equal(token.azp, 'end-users')
      }
    })

    it('judges each role\'s rules in order, first match deciding, and leaves out clients the user holds no role of', async () => {
      const mallory = claims(await login('mallory'))
      assert.deepEqual(mallory.resource_access[CONSOLE], { roles: ['operator'] }, 'the deny rule comes first')
      assert.equal(mallory.resource_access[REPORTS_UI], undefined)
      assert.deepEqual(mallory.aud, [CONSOLE, 'account'])
      const outsider = claims(await login('outsider'))
      assert.deepEqual(outsider.resource_access, { account: { roles: ['manage-account', 'manage-account-links', 'view-profile'] } })
      assert.equal(outsider.aud, 'account', 'as before client roles: Keycloak\'s account alone')
    })

    it('lets a service meant for a client take another client\'s token that carries its roles, as Keycloak\'s aud allows', async () => {
      const call = async (username: string) => gw.fetch('/console-api/status', { headers: { authorization: `Bearer ${(await login(username)).access_token}` } })
      const operator = await call('operator')
      assert.equal(operator.status, 200)
      assert.equal((await operator.json() as { identity: { username: string } }).identity.username, 'operator')
      const outsider = await call('outsider')
      assert.equal(outsider.status, 401, 'a token of end-users alone is not meant for the console')
      assert.equal((await outsider.json() as { code: string }).code, 'invalid_token')
    })

    it('judges networks with the token request\'s address, as a sign-in\'s', async () => {
      for (const extra of ['', TO_PROVIDER]) assert.deepEqual(claims(await login('visitor', 'end-users', extra)).resource_access[CONSOLE], { roles: ['on-site'] }, extra)
    })

    it('does not name the token\'s own client in aud, as Keycloak\'s audience resolve leaves it out', async () => {
      const token = claims(await login('operator', CONSOLE))
      assert.deepEqual(token.resource_access[CONSOLE], { roles: ['operator', 'viewer'] })
      assert.deepEqual(token.aud, [REPORTS_UI, 'account'])
      assert.equal(token.azp, CONSOLE)
    })

    it('judges the roles again at each refresh, on both paths: a user who left the team loses its role', async () => {
      await gw.app.accounts.create({ username: 'leaver', password: password('leaver') })
      const team = gw.app.access.teams.find((t) => t.name === 'Operators')!.id
      const membership = await grant(gw, 'leaver', 'Team Member', team)
      assert.equal(membership.status, 201)
      const sessions = [await login('leaver'), await login('leaver')]
      for (const session of sessions) assert.deepEqual(claims(session).resource_access[CONSOLE], { roles: ['operator', 'viewer'] })
      assert.equal((await call(gw, 'DELETE', `role_user_assignments/${membership.body.id}/`)).status, 204)
      for (const [i, extra] of ['', TO_PROVIDER].entries()) {
        const refreshed = await postToken(gw, `client_id=end-users&grant_type=refresh_token&refresh_token=${sessions[i]!.refresh_token}${extra}`)
        assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
        assert.equal(claims(refreshed.body).resource_access[CONSOLE], undefined, extra)
        assert.equal(claims(refreshed.body).aud, 'account', extra)
      }
    })

    it('carries the roles in the authorization code flow\'s tokens', async () => {
      const { status, body } = await tokenRequest(gw, await codeRedemption(gw, 'operator', password('operator')))
      assert.equal(status, 200, JSON.stringify(body))
      assert.deepEqual(claims(body).resource_access[CONSOLE], { roles: ['operator', 'viewer'] })
      assert.deepEqual(claims(body).aud, [CONSOLE, REPORTS_UI, 'account'])
      assert.equal(decodeJwtPart(body.id_token, 1).resource_access, undefined, 'Keycloak\'s client roles mapper leaves ID tokens out')
    })

    it('shows the roles and their audiences at introspection, and not at userinfo, as Keycloak\'s client roles mapper', async () => {
      const body = await login('operator', 'end-users', '&scope=openid')
      const introspected = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`reports:${SERVICE_SECRET}`).toString('base64')}` },
        body: new URLSearchParams({ token: body.access_token }),
      }).then((r) => r.json()) as Record<string, any>
      assert.equal(introspected.active, true)
      assert.deepEqual(introspected.resource_access, claims(body).resource_access)
      assert.deepEqual(introspected.aud, [CONSOLE, REPORTS_UI, 'account'])
      const userinfo = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${body.access_token}` } })
      assert.equal(userinfo.status, 200)
      const info = await userinfo.json() as Record<string, unknown>
      assert.equal(info.preferred_username, 'operator')
      assert.equal(info.resource_access, undefined)
    })

    it('gives a service account the roles its rules allow it, those naming networks aside', async () => {
      const { status, body } = await tokenRequest(gw, { client_id: 'reports', client_secret: SERVICE_SECRET, grant_type: 'client_credentials' })
      assert.equal(status, 200, JSON.stringify(body))
      assert.deepEqual(claims(body).resource_access[REPORTS_UI], { roles: ['reader'] }, 'judged from no address: no networks condition matches')
      assert.ok(claims(body).aud.includes(REPORTS_UI))
    })

    it('keeps a team its role rules name from being renamed by its admin, as a team an access rule names', async () => {
      await gw.app.accounts.create({ username: 'opsadmin', password: password('opsadmin') })
      const team = gw.app.access.teams.find((t) => t.name === 'Operators')!.id
      assert.equal((await grant(gw, 'opsadmin', 'Team Admin', team)).status, 201)
      const renamed = await call(gw, 'PATCH', `teams/${team}/`, { name: 'Operators 2' }, { authorization: basic('opsadmin', password('opsadmin')) })
      assert.equal(renamed.status, 403)
      assert.equal(renamed.body.code, 'permission_denied')
      assert.equal((await call(gw, 'GET', `teams/${team}/`)).body.name, 'Operators')
    })

    it('keeps a membership change out of tokens issued before it', async () => {
      const before = claims(await login('operator'))
      assert.equal((await call(gw, 'DELETE', `role_user_assignments/${operatorMembership}/`)).status, 204)
      const afterwards = claims(await login('operator'))
      assert.deepEqual(before.resource_access[CONSOLE], { roles: ['operator', 'viewer'] })
      assert.equal(afterwards.resource_access[CONSOLE], undefined)
    })
  })
}
