import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { browse, CLIENT_REDIRECT, codeRedemption, CookieJar, decodeJwtPart, password, postToken, REALM, realmUrl, realmWith, submitForm, TO_PROVIDER, tokenRequest } from '../helpers/oidc.ts'

const CONSOLE = 'operators-console'
const REPORTS_UI = 'reports-ui'
const NARROW = 'narrow'
const BARE = 'bare'
const SLASHED = 'slashed'
/** A realm role whose name has a `/`, as the gateway API's role definitions may have. */
const SLASHED_ROLE = 'Ops/Admin'
const NARROW_SERVICE = 'narrow-service'
const NARROW_SERVICE_SECRET = 'narrow-service-secret-0123'
const ACCOUNT = { roles: ['manage-account', 'manage-account-links', 'view-profile'] }

/**
 * Keycloak's "Full scope allowed" off (`full_scope_allowed: false`): a client's access tokens carry only the user's
 * roles that are the client's own or in its `scope` (TokenManager.getAccess), and `aud` names only the clients whose
 * roles are left (the audience resolve mapper), in every grant, at refresh and at introspection.
 */
describe('a realm client without full scope', () => {
  let gw: TestGateway

  before(async () => {
    const publicClient = { public_client: true, direct_access_grants: true, redirect_uris: [CLIENT_REDIRECT] }
    gw = await startGateway({
      config: {
        realms: realmWith([
          { client_id: CONSOLE, ...publicClient, roles: {
            operator: [{ allow: { teams: ['Operators'] } }],
            viewer: [{ allow: { teams: ['Operators'] } }],
          } },
          { client_id: REPORTS_UI, public_client: true, standard_flow: false, roles: { reader: [{ allow: { users: ['operator', `service-account-${NARROW_SERVICE}`] } }] } },
          { client_id: NARROW, ...publicClient, device_authorization_grant: true, full_scope_allowed: false,
            roles: { own: [{ allow: { users: ['operator'] } }] },
            scope: ['Team Member', `${CONSOLE}/viewer`] },
          { client_id: BARE, ...publicClient, full_scope_allowed: false },
          { client_id: SLASHED, ...publicClient, full_scope_allowed: false, scope: [{ realm_role: SLASHED_ROLE }] },
          { client_id: NARROW_SERVICE, public_client: false, secret: NARROW_SERVICE_SECRET, service_accounts: true, full_scope_allowed: false, scope: [`default-roles-${REALM}`] },
        ]),
        // A service that takes the console's tokens, and by Keycloak's audience resolve those carrying its roles.
        services: [{ name: 'console-api', prefix: '/console-api/', upstream: 'builtin:demo', accepts: ['oidc'], unauthenticated: '401', oidc: { realm: REALM, audiences: [CONSOLE] } }],
      },
    })
    await gw.app.accounts.create({ username: 'operator', password: password('operator') })
    const platform = await createOrgAndTeam(gw, 'Platform', 'Operators')
    assert.equal((await grant(gw, 'operator', 'Team Member', platform.team)).status, 201)
    await gw.app.accounts.create({ username: 'slasher', password: password('slasher') })
    const slashed = await call(gw, 'POST', 'role_definitions/', { name: SLASHED_ROLE, content_type: 'shared.team', permissions: ['shared.view_team'] })
    assert.equal(slashed.status, 201, JSON.stringify(slashed.body))
    for (const role of [SLASHED_ROLE, 'Team Member']) assert.equal((await grant(gw, 'slasher', role, platform.team)).status, 201)
  })
  after(() => gw.close())

  const login = async (clientId: string, extra = ''): Promise<Record<string, any>> => {
    const answer = await postToken(gw, `client_id=${clientId}&grant_type=password&username=operator&password=${password('operator')}${extra}`)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    return answer.body
  }
  const refresh = async (clientId: string, body: Record<string, any>, extra = ''): Promise<Record<string, any>> => {
    const answer = await postToken(gw, `client_id=${clientId}&grant_type=refresh_token&refresh_token=${body.refresh_token}${extra}`)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    return answer.body
  }
  const claims = (body: Record<string, any>) => decodeJwtPart(body.access_token, 1)
  /** What a token of NARROW carries for the operator: its own role, and the scope's realm role and console role. */
  const narrowRoles = (token: Record<string, any>) => {
    assert.deepEqual(token.realm_access, { roles: ['Team Member'] })
    assert.deepEqual(token.resource_access, { [CONSOLE]: { roles: ['viewer'] }, [NARROW]: { roles: ['own'] } })
    assert.equal(token.aud, CONSOLE, 'the console, whose role it carries; not itself, nor account')
    assert.equal(token.azp, NARROW)
  }

  it('carries every role of the user with full scope, as before', async () => {
    const token = claims(await login('end-users'))
    assert.deepEqual(token.realm_access.roles, [`default-roles-${REALM}`, 'offline_access', 'uma_authorization', 'Team Member'])
    assert.deepEqual(token.resource_access, { [CONSOLE]: { roles: ['operator', 'viewer'] }, [REPORTS_UI]: { roles: ['reader'] }, [NARROW]: { roles: ['own'] }, account: ACCOUNT })
    assert.deepEqual(token.aud, [CONSOLE, REPORTS_UI, NARROW, 'account'])
  })

  it('carries only the client\'s own roles and its scope\'s in the password grant, on both paths, and again at each refresh', async () => {
    for (const extra of ['', TO_PROVIDER]) {
      const body = await login(NARROW, extra)
      narrowRoles(claims(body))
      narrowRoles(claims(await refresh(NARROW, body, extra)))
    }
  })

  it('leaves realm_access, resource_access and aud out of a token whose client has no roles in scope', async () => {
    for (const extra of ['', TO_PROVIDER]) {
      const body = await login(BARE, extra)
      for (const token of [claims(body), claims(await refresh(BARE, body, extra))]) {
        assert.equal(token.realm_access, undefined, extra)
        assert.equal(token.resource_access, undefined, extra)
        assert.equal(token.aud, undefined, extra)
        assert.equal(token.azp, BARE)
        assert.equal(token.preferred_username, 'operator')
      }
    }
  })

  it('keeps the offline_access realm role for a token of scope offline_access, as Keycloak\'s offline_access client scope maps it', async () => {
    const body = await login(BARE, '&scope=offline_access')
    assert.equal(decodeJwtPart(body.refresh_token, 1).typ, 'Offline')
    for (const token of [claims(body), claims(await refresh(BARE, body))]) {
      assert.deepEqual(token.realm_access, { roles: ['offline_access'] })
      assert.equal(token.resource_access, undefined)
    }
  })

  it('limits the tokens of the authorization code flow and its refresh', async () => {
    const { status, body } = await tokenRequest(gw, await codeRedemption(gw, 'operator', password('operator'), NARROW))
    assert.equal(status, 200, JSON.stringify(body))
    narrowRoles(claims(body))
    narrowRoles(claims(await refresh(NARROW, body)))
  })

  it('limits the tokens of the device grant', async () => {
    const started = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/auth/device`, { method: 'POST', body: new URLSearchParams({ client_id: NARROW }) })
    const { device_code: deviceCode, user_code: userCode } = await started.json() as { device_code: string; user_code: string }
    const jar = new CookieJar()
    const confirm = await submitForm(gw, jar, await browse(gw, jar, realmUrl(gw, '/device')), { user_code: userCode })
    await submitForm(gw, jar, await submitForm(gw, jar, confirm, {}), { username: 'operator', password: password('operator') })
    const { status, body } = await tokenRequest(gw, { client_id: NARROW, grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: deviceCode })
    assert.equal(status, 200, JSON.stringify(body))
    narrowRoles(claims(body))
  })

  it('limits a service account\'s tokens, on both paths, with Keycloak\'s composite default role expanded', async () => {
    for (const extra of [{}, { ignored: '1' }] as Record<string, string>[]) {
      const { status, body } = await tokenRequest(gw, { client_id: NARROW_SERVICE, client_secret: NARROW_SERVICE_SECRET, grant_type: 'client_credentials', ...extra })
      assert.equal(status, 200, JSON.stringify(body))
      const token = claims(body)
      assert.deepEqual(token.realm_access, { roles: [`default-roles-${REALM}`, 'offline_access', 'uma_authorization'] })
      assert.deepEqual(token.resource_access, { account: ACCOUNT }, 'view-profile and manage-account, which holds manage-account-links; not reports-ui\'s reader')
      assert.equal(token.aud, 'account')
    }
  })

  it('shows the limited roles and audience at introspection, and no roles at userinfo', async () => {
    const body = await login(NARROW, '&scope=openid')
    const introspect = async (token: string) => await gw.fetch(`/realms/${REALM}/protocol/openid-connect/token/introspect`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${NARROW_SERVICE}:${NARROW_SERVICE_SECRET}`).toString('base64')}` },
      body: new URLSearchParams({ token }),
    }).then((r) => r.json()) as Record<string, any>
    const introspected = await introspect(body.access_token)
    assert.equal(introspected.active, true)
    narrowRoles(introspected)
    const bare = await introspect((await login(BARE)).access_token)
    assert.equal(bare.active, true)
    assert.equal(bare.aud, undefined)
    assert.equal(bare.resource_access, undefined)
    const userinfo = await gw.fetch(`/realms/${REALM}/protocol/openid-connect/userinfo`, { headers: { authorization: `Bearer ${body.access_token}` } })
    assert.equal(userinfo.status, 200)
    const info = await userinfo.json() as Record<string, unknown>
    assert.equal(info.preferred_username, 'operator')
    assert.equal(info.resource_access, undefined)
    assert.equal(info.realm_access, undefined)
  })

  it('carries a realm role whose name has a "/" that the scope names in its object form, and no other', async () => {
    const tokenOf = async (clientId: string) => {
      const answer = await postToken(gw, `client_id=${clientId}&grant_type=password&username=slasher&password=${password('slasher')}`)
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      return claims(answer.body)
    }
    const full = await tokenOf('end-users')
    assert.ok(full.realm_access.roles.includes(SLASHED_ROLE), 'the user holds it')
    const token = await tokenOf(SLASHED)
    assert.deepEqual(token.realm_access, { roles: [SLASHED_ROLE] }, 'not Team Member, nor the default roles')
    assert.equal(token.resource_access, undefined)
    assert.deepEqual((await tokenOf(NARROW)).realm_access, { roles: ['Team Member'] }, 'a scope without it leaves it out')
  })

  it('keeps a service meant for a client from taking a token of a client that does not have its roles in scope', async () => {
    const call = async (clientId: string) => gw.fetch('/console-api/status', { headers: { authorization: `Bearer ${(await login(clientId)).access_token}` } })
    assert.equal((await call('end-users')).status, 200, 'full scope: the token carries the console\'s roles')
    assert.equal((await call(NARROW)).status, 200, 'the console\'s viewer role is in its scope')
    const refused = await call(BARE)
    assert.equal(refused.status, 401)
    assert.equal((await refused.json() as { code: string }).code, 'invalid_token')
  })
})
