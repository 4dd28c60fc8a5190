import assert from 'node:assert/strict'
import { decodeJwt } from 'jose'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant, roleId, userId } from '../helpers/access.ts'
import { adminAuth, basic, json, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { bearer, createToken } from '../helpers/tokens.ts'

describe('privilege escalation through the gateway API', () => {
  let gw: TestGateway
  let a: { organization: number; team: number | undefined }
  let b: { organization: number; team: number | undefined }
  const ids: Record<string, number> = {}
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  let adminRead: Record<string, string>
  let external: Record<string, string>

  before(async () => {
    gw = await startGateway()
    for (const name of ['plain', 'orgadmin', 'teamadmin', 'member', 'auditor', 'victim', 'adminb']) {
      ids[name] = (await gw.app.accounts.create({ username: name, password: `${name}-password-long` })).id
    }
    ids.admin = await userId(gw, 'admin')
    a = await createOrgAndTeam(gw, 'Alpha', 'AlphaTeam')
    b = await createOrgAndTeam(gw, 'Beta', 'BetaTeam')
    await grant(gw, 'orgadmin', 'Organization Admin', a.organization)
    await grant(gw, 'teamadmin', 'Team Admin', a.team)
    await grant(gw, 'member', 'Team Member', a.team)
    await grant(gw, 'adminb', 'Organization Admin', b.organization)
    await grant(gw, 'auditor', 'Platform Auditor')
    adminRead = bearer((await createToken(gw, adminAuth, { scope: 'read' })).token)
    const directory = await gw.app.accounts.create({ username: 'dir-user', source: 'ldap', external: true })
    ids['dir-user'] = directory.id
    external = bearer((await gw.app.tokens.issue(directory, { scope: 'write' })).value)
  })
  after(() => gw.close())

  const everyone = () => ({
    plain: as('plain'), orgadmin: as('orgadmin'), teamadmin: as('teamadmin'), member: as('member'), auditor: as('auditor'), external,
  })

  it('no one but a superuser makes anyone superuser or auditor, or changes another account', async () => {
    for (const [who, auth] of Object.entries(everyone())) {
      const me = who === 'external' ? ids['dir-user']! : ids[who]!
      for (const body of [{ is_superuser: true }, { is_system_auditor: true }, { is_platform_auditor: true }, { username: 'admin' }]) {
        for (const method of ['PATCH', 'PUT']) {
          const own = await call(gw, method, `users/${me}/`, { username: who, ...body }, auth)
          // Everyone changes their own record (as on the platform); an auditor sending the flag they hold changes nothing.
          const holds = who === 'auditor' && ('is_system_auditor' in body || 'is_platform_auditor' in body)
          assert.ok(holds ? own.status === 200 : [400, 403].includes(own.status), `${who} ${method} own ${JSON.stringify(body)}: ${own.status}`)
        }
      }
      for (const body of [{ password: 'a-new-password-long' }, { email: 'x@example.com' }, { is_active: false }]) {
        const other = await call(gw, 'PATCH', `users/${ids.victim}/`, body, auth)
        assert.ok([403, 404].includes(other.status), `${who} PATCH victim ${JSON.stringify(body)}: ${other.status}`)
      }
      assert.ok([403, 404].includes((await call(gw, 'DELETE', `users/${ids.victim}/`, undefined, auth)).status), `${who} DELETE victim`)
      for (const body of [{ is_superuser: true }, { username: 'admin' }, { is_system_auditor: true }]) {
        const me2 = await call(gw, 'PATCH', 'me/', body, auth)
        assert.ok([400, 403].includes(me2.status), `${who} PATCH me/ ${JSON.stringify(body)}: ${me2.status}`)
      }
      const created = await call(gw, 'POST', 'users/', { username: `new-${who}`, password: 'a-new-password-long', is_superuser: true }, auth)
      assert.equal(created.status, 403, `${who} POST users/`)
    }
    const victim = (await call(gw, 'GET', `users/${ids.victim}/`)).body
    assert.deepEqual([victim.is_active, victim.email, victim.is_superuser], [true, '', false])
    for (const name of Object.keys(everyone())) {
      const user = (await call(gw, 'GET', `users/?username=${name === 'external' ? 'dir-user' : name}`)).body.results[0]
      assert.equal(user.is_superuser, false, name)
      assert.equal(user.is_system_auditor, name === 'auditor', name)
    }
  })

  it('no one but a superuser sees or ends another user\'s sessions and tokens', async () => {
    for (const [who, auth] of Object.entries(everyone())) {
      for (const path of [`users/${ids.victim}/sessions/`, 'sessions/']) {
        const seen = await call(gw, 'GET', path, undefined, auth)
        assert.equal(seen.status, who === 'auditor' ? 200 : 403, `${who} GET ${path}`)
        assert.equal((await call(gw, 'DELETE', path.startsWith('users') ? path : 'sessions/1/', undefined, auth)).status, 403, `${who} DELETE ${path}`)
      }
      // Organization and team admins see every user; the others do not see the victim, who is in no organization.
      const seesVictim = ['auditor', 'orgadmin', 'teamadmin'].includes(who)
      const tokens = await call(gw, 'GET', `users/${ids.victim}/tokens/`, undefined, auth)
      assert.equal(tokens.status, who === 'auditor' ? 200 : seesVictim ? 403 : 404, `${who} GET victim tokens`)
      const created = await call(gw, 'POST', `users/${ids.victim}/tokens/`, {}, auth)
      assert.equal(created.status, seesVictim ? 403 : 404, `${who} POST victim tokens`)
      assert.equal((await call(gw, 'POST', 'tokens/revoke/', { user: ids.victim }, auth)).status, 403, `${who} revoke`)
      const all = await call(gw, 'GET', 'tokens/', undefined, auth)
      if (who !== 'auditor') assert.ok(all.body.results.every((t: any) => t.user === (who === 'external' ? ids['dir-user'] : ids[who])), `${who} tokens/ shows others'`)
      const byUser = await call(gw, 'GET', `tokens/?user=${ids.admin}`, undefined, auth)
      if (who !== 'auditor') assert.equal(byUser.body.count, 0, `${who} tokens/?user=admin`)
    }
  })

  it('no one gives a role they do not hold, or a role in another organization', async () => {
    const attempts: [string, string, string, number | undefined][] = [
      ['plain', 'plain', 'Organization Admin', a.organization],
      ['plain', 'plain', 'Team Member', a.team],
      ['member', 'member', 'Team Admin', a.team],
      ['member', 'plain', 'Team Member', a.team],
      ['teamadmin', 'teamadmin', 'Organization Admin', a.organization],
      ['teamadmin', 'teamadmin', 'Organization Member', a.organization],
      ['teamadmin', 'teamadmin', 'Team Member', b.team],
      ['orgadmin', 'orgadmin', 'Organization Admin', b.organization],
      ['orgadmin', 'orgadmin', 'Team Admin', b.team],
      ['orgadmin', 'orgadmin', 'Platform Auditor', undefined],
      ['teamadmin', 'teamadmin', 'Platform Auditor', undefined],
      ['auditor', 'auditor', 'Organization Admin', a.organization],
      ['auditor', 'plain', 'Team Member', a.team],
    ]
    for (const [who, to, role, object] of attempts) {
      const given = await grant(gw, to, role, object, as(who))
      assert.ok([400, 403, 404].includes(given.status), `${who} gives ${to} ${role} on ${object}: ${given.status} ${JSON.stringify(given.body)}`)
    }
    // A team of org A made to hold a role in org B, and org B's team made to hold one in A.
    for (const [who, team, role, object] of [
      ['orgadmin', a.team, 'Organization Admin', b.organization],
      ['orgadmin', b.team, 'Team Member', a.team],
      ['teamadmin', b.team, 'Team Member', a.team],
      ['teamadmin', a.team, 'Team Member', b.team],
    ] as const) {
      const given = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, role), team, object_id: object }, as(who))
      assert.ok([400, 403, 404].includes(given.status), `${who} gives team ${team} ${role} on ${object}: ${given.status}`)
    }
    // Removing Org B's admin.
    const bAdmin = (await call(gw, 'GET', `role_user_assignments/?user=${ids.adminb}`)).body.results[0]
    for (const who of ['orgadmin', 'teamadmin', 'member', 'plain', 'auditor']) {
      const removed = await call(gw, 'DELETE', `role_user_assignments/${bAdmin.id}/`, undefined, as(who))
      assert.ok([403, 404].includes(removed.status), `${who} removes Beta's admin: ${removed.status}`)
    }
    assert.equal((await call(gw, 'GET', `role_user_assignments/${bAdmin.id}/`)).status, 200)
  })

  it('refuses the superuser flag however it is spelt, and ids of other types than numbers, and changes nothing', async () => {
    const member = `users/${ids.member}/`
    // Repeated form keys (the last one is the one Django reads), spaces and NULs around a truth.
    for (const body of ['is_superuser=false&is_superuser=true', 'is_superuser=true&is_superuser=false', 'is_superuser=%20true', 'is_superuser=TRUE%00']) {
      const response = await gw.fetch(`/api/gateway/v1/${member}`, { method: 'PATCH', headers: { ...as('orgadmin'), 'content-type': 'application/x-www-form-urlencoded' }, body })
      assert.ok([400, 403].includes(response.status), `${body}: ${response.status}`)
    }
    for (const value of [true, 'true', 'True', 'TRUE', 1, '1', 'yes', 'on', 't', [true], {}]) {
      const response = await call(gw, 'PATCH', member, { is_superuser: value }, as('orgadmin'))
      assert.ok([400, 403].includes(response.status), `${JSON.stringify(value)}: ${response.status}`)
    }
    assert.equal((await call(gw, 'GET', member)).body.is_superuser, false)
    // Beta's organization, and the Organization Admin role, named by values that are not plain ids.
    const assignments = async () => (await call(gw, 'GET', 'role_user_assignments/?page_size=200')).body.count as number
    const before = await assignments()
    const role = await roleId(gw, 'Organization Admin')
    const spellings = (id: number) => [`${id}e0`, ` ${id}`, `0x${id.toString(16)}`, `${id};${a.organization}`, `${id}.0`, [id], { id }, true, -id, 1.5]
    for (const objectId of spellings(b.organization)) {
      const given = await call(gw, 'POST', 'role_user_assignments/', { role_definition: role, user: ids.orgadmin, object_id: objectId }, as('orgadmin'))
      assert.ok([400, 403, 404].includes(given.status), `object_id ${JSON.stringify(objectId)}: ${given.status}`)
    }
    for (const roleDefinition of spellings(role)) {
      const given = await call(gw, 'POST', 'role_user_assignments/', { role_definition: roleDefinition, user: ids.orgadmin, object_id: b.organization }, as('orgadmin'))
      assert.ok([400, 403, 404].includes(given.status), `role_definition ${JSON.stringify(roleDefinition)}: ${given.status}`)
    }
    assert.equal(await assignments(), before)
  })

  it('shows no one another user\'s tokens through the list\'s filters', async () => {
    await createToken(gw, as('victim'), { description: 'the victim\'s' })
    await createToken(gw, as('orgadmin'), { description: 'their own' })
    // The filter finds the victim's token for a superuser: the lists below are empty of it because it is hidden.
    assert.ok((await call(gw, 'GET', `tokens/?user=${ids.victim}`)).body.results.some((token: { description: string }) => token.description === 'the victim\'s'))
    for (const query of [`user=${ids.victim}`, `or__user=${ids.victim}`, `not__user=${ids.plain}`, `chain__user=${ids.victim}`, 'search=victim', `or__id__gt=0`, 'description__icontains=victim']) {
      const listed = await call(gw, 'GET', `tokens/?${query}`, undefined, as('orgadmin'))
      assert.equal(listed.status, 200, query)
      assert.ok(listed.body.results.every((token: { user: number }) => token.user === ids.orgadmin), `${query}: ${JSON.stringify(listed.body.results)}`)
    }
  })

  it('no one but a superuser makes or changes role definitions', async () => {
    const managed = await roleId(gw, 'Team Member')
    for (const [who, auth] of Object.entries(everyone())) {
      const made = await call(gw, 'POST', 'role_definitions/', { name: `mine-${who}`, content_type: 'shared.organization', permissions: ['shared.view_organization', 'shared.change_organization'] }, auth)
      assert.equal(made.status, 403, `${who} makes a role`)
      const changed = await call(gw, 'PATCH', `role_definitions/${managed}/`, { permissions: ['shared.view_team', 'shared.member_team', 'shared.change_team'] }, auth)
      assert.ok([403, 400].includes(changed.status), `${who} changes a managed role: ${changed.status}`)
      assert.ok([403, 400].includes((await call(gw, 'DELETE', `role_definitions/${managed}/`, undefined, auth)).status), `${who} deletes a managed role`)
    }
    const admin = await call(gw, 'PATCH', `role_definitions/${managed}/`, { permissions: ['shared.view_team', 'shared.member_team', 'shared.change_team'] })
    assert.ok(admin.status >= 400, 'even a superuser cannot edit a managed role')
  })

  it('keeps organizations and teams of Beta out of reach of Alpha\'s admins', async () => {
    for (const who of ['orgadmin', 'teamadmin', 'member', 'plain']) {
      const auth = as(who)
      for (const [method, path, body] of [
        ['PATCH', `organizations/${b.organization}/`, { name: 'Taken' }],
        ['DELETE', `organizations/${b.organization}/`, undefined],
        ['PATCH', `teams/${b.team}/`, { name: 'Taken' }],
        ['DELETE', `teams/${b.team}/`, undefined],
        ['PATCH', `teams/${a.team}/`, { organization: b.organization }],
        ['POST', 'teams/', { name: `Sneaky ${who}`, organization: b.organization }],
        ['POST', 'organizations/', { name: `New ${who}` }],
      ] as const) {
        const answer = await call(gw, method, path, body, auth)
        assert.ok([400, 403, 404].includes(answer.status), `${who} ${method} ${path}: ${answer.status}`)
      }
    }
    assert.equal((await call(gw, 'GET', `organizations/${b.organization}/`)).body.name, 'Beta')
    assert.equal((await call(gw, 'GET', `teams/${b.team}/`)).body.name, 'BetaTeam')
  })

  it('hides Beta from Alpha\'s people in lists, filters and lookups', async () => {
    for (const who of ['orgadmin', 'teamadmin', 'member', 'plain']) {
      const auth = as(who)
      assert.equal((await call(gw, 'GET', 'organizations/?name=Beta', undefined, auth)).body.count, 0, who)
      assert.equal((await call(gw, 'GET', `teams/?organization=${b.organization}`, undefined, auth)).body.count, 0, who)
      assert.equal((await call(gw, 'GET', `organizations/${b.organization}/teams/`, undefined, auth)).status, 404, who)
      assert.equal((await call(gw, 'GET', `role_user_assignments/?object_id=${b.organization}&content_type=shared.organization`, undefined, auth)).body.count, 0, who)
      assert.equal((await call(gw, 'GET', `role_team_assignments/?team=${b.team}`, undefined, auth)).body.count, 0, who)
      assert.equal((await call(gw, 'GET', 'activitystream/', undefined, auth)).status, 403, who)
      // `or__` and `not__` filters narrow what the caller sees; they never widen it.
      for (const [path, hidden] of [
        ['users/?or__username=victim&or__username=adminb', ['victim', 'adminb']],
        ['users/?not__username=nobody', ['victim', 'adminb']],
        ['organizations/?or__name=Beta&or__id=0', ['Beta']],
        ['organizations/?not__name=Alpha', ['Beta']],
        ['teams/?or__name=BetaTeam&or__organization=' + b.organization, ['BetaTeam']],
        ['teams/?not__name=x&search=Beta', ['BetaTeam']],
        ['role_user_assignments/?or__user=' + ids.adminb + '&or__object_id=' + b.organization, [ids.adminb]],
      ] as const) {
        // Organization and team admins see every user, to add them (docs/access.md).
        if (path.startsWith('users/') && (who === 'orgadmin' || who === 'teamadmin')) continue
        const listed = await call(gw, 'GET', path, undefined, auth)
        assert.equal(listed.status, 200, `${who} ${path}`)
        const shown = listed.body.results.flatMap((r: any) => [r.username, r.name, r.user])
        for (const name of hidden) assert.ok(!shown.includes(name), `${who} ${path} shows ${name}`)
      }
      for (const leak of ['password__startswith=a', 'order_by=password', 'password=x', 'user__username=admin', 'organization__name=Beta', 'team__name=BetaTeam']) {
        for (const path of ['users/', 'teams/', 'role_user_assignments/', 'tokens/']) {
          const answer = await call(gw, 'GET', `${path}?${leak}`, undefined, auth)
          if (path === 'role_user_assignments/' && leak === 'user__username=admin') {
            // The assignment lists take this lookup, as the platform's clients send it: within what the caller sees.
            assert.equal(answer.status, 200, `${who} ${path}?${leak}: ${answer.status}`)
            const visible = new Set((await call(gw, 'GET', `${path}?page_size=200`, undefined, auth)).body.results.map((r: any) => r.id))
            for (const row of answer.body.results) assert.ok(visible.has(row.id), `${who} ${path}?${leak} shows assignment ${row.id}`)
            continue
          }
          assert.equal(answer.status, 400, `${who} ${path}?${leak}: ${answer.status}`)
        }
      }
    }
  })

  it('lets a read token, or an auditor, change nothing anywhere', async () => {
    // The caller's own account, tokens and sessions: an auditor may change those, a read token not.
    const ownWrites: [string, string, unknown][] = [
      ['PATCH', 'me/', { first_name: 'Read' }],
      ['POST', 'me/password/', { current_password: 'x', new_password: 'y' }],
      ['POST', 'me/sessions/end_others/', {}],
      ['DELETE', 'me/sessions/1/', undefined],
      ['POST', 'tokens/', {}],
      ['POST', `users/${ids.admin}/tokens/`, {}],
      ['POST', 'session/', {}],
      ['POST', 'logout/', {}],
    ]
    const writes: [string, string, unknown][] = [
      ['PATCH', `users/${ids.victim}/`, { email: 'r@example.com' }],
      ['POST', 'users/', { username: 'by-read', password: 'a-new-password-long' }],
      ['DELETE', `users/${ids.victim}/`, undefined],
      ['PATCH', 'tokens/1/', { description: 'x' }],
      ['DELETE', 'tokens/1/', undefined],
      ['POST', 'tokens/revoke/', { all: true }],
      ['DELETE', `users/${ids.victim}/sessions/`, undefined],
      ['PATCH', 'settings/all/', { local_password_min_length: 3 }],
      ['PUT', 'settings/', { local_password_min_length: 3 }],
      ['DELETE', 'settings/all/', undefined],
      ['POST', 'organizations/', { name: 'ByRead' }],
      ['PATCH', `organizations/${a.organization}/`, { name: 'ByRead' }],
      ['DELETE', `teams/${b.team}/`, undefined],
      ['POST', 'role_definitions/', { name: 'ByRead', content_type: 'shared.team', permissions: ['shared.view_team'] }],
      ['POST', 'role_user_assignments/', { role_definition: 2, user: ids.victim, object_id: a.organization }],
      ['POST', 'applications/', { name: 'ByRead', client_type: 'public', authorization_grant_type: 'password' }],
    ]
    for (const [label, auth] of [['admin read token', adminRead], ['auditor', as('auditor')]] as const) {
      for (const [method, path, body] of label === 'auditor' ? writes : [...writes, ...ownWrites]) {
        const answer = await call(gw, method, path, body, auth)
        assert.ok([403, 404].includes(answer.status) || (label === 'auditor' && answer.status === 400), `${label} ${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`)
      }
    }
    assert.equal((await call(gw, 'GET', `users/${ids.victim}/`)).body.email, '')
    assert.equal((await call(gw, 'GET', 'settings/all/')).body.local_password_min_length, 12)
  })

  it('judges a token by its user as they are now: disabled, or no longer a superuser', async () => {
    const { id } = (await call(gw, 'POST', 'users/', { username: 'demoted', password: 'demoted-password-long', is_superuser: true })).body
    const token = bearer((await createToken(gw, { authorization: basic('demoted', 'demoted-password-long') })).token)
    assert.equal((await call(gw, 'GET', 'settings/all/', undefined, token)).status, 200)
    assert.equal((await call(gw, 'PATCH', `users/${id}/`, { is_superuser: false })).status, 200)
    assert.equal((await call(gw, 'GET', 'settings/all/', undefined, token)).status, 403)
    // No longer a superuser, they do not even see the victim, who is in no organization: 404, as on the platform.
    assert.equal((await call(gw, 'PATCH', `users/${ids.victim}/`, { email: 'd@example.com' }, token)).status, 404)
    assert.equal((await call(gw, 'PATCH', `users/${id}/`, { is_active: false })).status, 200)
    assert.equal((await call(gw, 'GET', 'me/', undefined, token)).status, 401)
  })

  it('keeps settings, the activity stream and realm events to superusers (auditors read them)', async () => {
    for (const [who, auth] of Object.entries(everyone())) {
      for (const path of ['settings/', 'settings/all/', 'settings/oauth2/', 'activitystream/']) {
        assert.equal((await call(gw, 'GET', path, undefined, auth)).status, who === 'auditor' ? 200 : 403, `${who} GET ${path}`)
      }
      const events = await gw.fetch('/admin/realms/platform/events', { headers: auth })
      assert.equal(events.status, who === 'auditor' ? 200 : 403, `${who} realm events`)
      // Refused before the query is read, as settings and sessions are: no list's fields are told to those who may not read it.
      if (who !== 'auditor') {
        for (const path of ['activitystream/?no_such_field=1', 'activitystream/?page=0', 'activitystream/1/']) {
          assert.equal((await call(gw, 'GET', path, undefined, auth)).status, 403, `${who} GET ${path}`)
        }
        assert.equal((await gw.fetch('/admin/realms/platform/events?first=x', { headers: auth })).status, 403, `${who} realm events with a bad query`)
      }
      for (const method of ['PATCH', 'PUT']) {
        const changed = await call(gw, method, 'settings/oauth2/', { allow_external_users_to_create_oauth2_tokens: true }, auth)
        assert.equal(changed.status, 403, `${who} ${method} settings`)
      }
      assert.equal((await call(gw, 'DELETE', 'settings/oauth2/', undefined, auth)).status, 403, `${who} DELETE settings`)
    }
    assert.equal((await call(gw, 'GET', 'settings/oauth2/')).body.allow_external_users_to_create_oauth2_tokens, false)
  })

  it('takes a revoked role or auditor flag away from the next request', async () => {
    await gw.app.accounts.create({ username: 'former', password: 'former-password-long' })
    const admin = await grant(gw, 'former', 'Organization Admin', a.organization)
    const auditor = await grant(gw, 'former', 'Platform Auditor')
    const token = bearer((await createToken(gw, as('former'))).token)
    assert.equal((await call(gw, 'GET', 'settings/all/', undefined, token)).status, 200)
    assert.equal((await call(gw, 'PATCH', `organizations/${a.organization}/`, { description: 'by former' }, token)).status, 200)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${auditor.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'GET', 'settings/all/', undefined, token)).status, 403)
    assert.equal((await call(gw, 'GET', 'activitystream/', undefined, token)).status, 403)
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${admin.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'PATCH', `organizations/${a.organization}/`, { description: 'again' }, token)).status, 404)
    assert.equal((await call(gw, 'POST', 'teams/', { name: 'Former', organization: a.organization }, token)).status, 403)
  })

  it('keeps applications to superusers', async () => {
    const made = await call(gw, 'POST', 'applications/', { name: 'App', organization: a.organization, client_type: 'confidential', authorization_grant_type: 'authorization-code', redirect_uris: 'https://app.example.com/cb' })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    for (const [who, auth] of Object.entries(everyone())) {
      assert.equal((await call(gw, 'PATCH', `applications/${made.body.id}/`, { redirect_uris: 'https://evil.example.com/cb' }, auth)).status, 403, who)
      assert.equal((await call(gw, 'DELETE', `applications/${made.body.id}/`, undefined, auth)).status, 403, who)
      const read = await call(gw, 'GET', `applications/${made.body.id}/`, undefined, auth)
      if (who === 'auditor') assert.equal(read.body.client_secret, '$encrypted$')
      else assert.equal(read.status, 403, who)
    }
  })

  it('ignores or refuses the fields the server keeps', async () => {
    const created = await call(gw, 'POST', 'organizations/', { name: 'Mass', id: 9999, created: '2000-01-01T00:00:00Z', managed: false })
    assert.ok(created.status === 400 || (created.body.id !== 9999 && !created.body.created.startsWith('2000')), JSON.stringify(created.body))
    const team = await call(gw, 'PATCH', `teams/${a.team}/`, { id: b.team, modified: '2000-01-01T00:00:00Z' }, as('teamadmin'))
    assert.ok(team.status === 400 || team.body.id === a.team, JSON.stringify(team.body))
    const managed = await call(gw, 'POST', 'role_definitions/', { name: 'Managed?', managed: true, content_type: 'shared.team', permissions: ['shared.view_team'] })
    assert.equal(managed.status, 400)
    const token = await call(gw, 'POST', 'tokens/', { user: ids.admin }, as('plain'))
    assert.equal(token.status, 400)
    const assignment = await call(gw, 'POST', 'role_user_assignments/', { role_definition: await roleId(gw, 'Team Member'), user: ids.plain, object_id: a.team, created_by: ids.admin, id: 1 }, as('teamadmin'))
    assert.ok([400, 201].includes(assignment.status))
  })

  it('keeps an organization admin from renaming their organization into another\'s team as realm tokens\' group paths show it', async () => {
    // Keycloak's full group paths join names with "/": a name holding one would read as the team of another
    // organization to a service that checks the claim, so it is escaped as Keycloak escapes it (`~/`).
    const target = await createOrgAndTeam(gw, 'Target', 'Ops')
    const own = await createOrgAndTeam(gw, 'Own')
    for (const name of ['ownadmin', 'ownmember']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    await grant(gw, 'ownadmin', 'Organization Admin', own.organization)
    await grant(gw, 'ownmember', 'Organization Member', own.organization)
    const renamed = await call(gw, 'PATCH', `organizations/${own.organization}/`, { name: 'Target/Ops' }, as('ownadmin'))
    assert.equal(renamed.status, 200, JSON.stringify(renamed.body))
    const slashed = await call(gw, 'POST', 'teams/', { name: 'Ops/Inner', organization: target.organization })
    assert.equal(slashed.status, 201)
    await grant(gw, 'ownmember', 'Team Member', slashed.body.id)
    const answer = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'ownmember', password: 'ownmember-password-long' }),
    })
    assert.equal(answer.status, 200)
    const { groups } = decodeJwt((await json(answer)).access_token) as { groups: string[] }
    assert.deepEqual(groups, ['/Target/Ops~/Inner', '/Target~/Ops'])
    assert.ok(!groups.includes('/Target/Ops'), 'not the path of Target\'s team Ops')
  })

  it('refuses organization and team names with control or bidirectional formatting characters, which could pass for another name', async () => {
    const own = await createOrgAndTeam(gw, 'Plain', 'PlainTeam')
    for (const name of ['Ops\r\nX-Evil: 1', 'Ops\u007f', 'T\u001b[31mRED', 'Ops\u202e', '\u2066Ops', 'Ops\u200f', 'Ops\u0085']) {
      for (const [method, path, body] of [
        ['POST', 'organizations/', { name }], ['PATCH', `organizations/${own.organization}/`, { name }],
        ['POST', 'teams/', { name, organization: own.organization }], ['PATCH', `teams/${own.team}/`, { name }],
      ] as const) {
        const refused = await call(gw, method, path, body)
        assert.equal(refused.status, 400, `${method} ${path} ${JSON.stringify(name)}`)
        assert.match(refused.body.name?.[0] ?? '', /control characters/, JSON.stringify(refused.body))
      }
    }
    assert.equal((await call(gw, 'GET', `teams/${own.team}/`)).body.name, 'PlainTeam')
    // Right-to-left scripts need none of them.
    assert.equal((await call(gw, 'POST', 'teams/', { name: 'צוות', organization: own.organization })).status, 201)
  })

  it('keeps an organization from being named so that its team\'s group path is another organization\'s', async () => {
    // Keycloak escapes only the slash: `/Target~/Ops` reads as the organization `Target/Ops` and as the team Ops of an
    // organization named `Target~` alike, so no organization name may end in `~`.
    const own = await createOrgAndTeam(gw, 'Tilde')
    await gw.app.accounts.create({ username: 'tildeadmin', password: 'tildeadmin-password-long' })
    await grant(gw, 'tildeadmin', 'Organization Admin', own.organization)
    for (const name of ['Target~', 'Target~  ', '~']) {
      const renamed = await call(gw, 'PATCH', `organizations/${own.organization}/`, { name }, as('tildeadmin'))
      assert.equal(renamed.status, 400, name)
      assert.ok(Array.isArray(renamed.body.name), JSON.stringify(renamed.body))
      assert.equal((await call(gw, 'POST', 'organizations/', { name })).status, 400, name)
      assert.equal((await call(gw, 'PUT', `organizations/${own.organization}/`, { name })).status, 400, name)
    }
    assert.equal((await call(gw, 'GET', `organizations/${own.organization}/`)).body.name, 'Tilde')
    const team = await call(gw, 'POST', 'teams/', { name: 'Ops~', organization: own.organization })
    assert.equal(team.status, 201, 'a team name ends a path, so it may end in ~')
    assert.equal((await call(gw, 'POST', 'organizations/', { name: 'A~B' })).status, 201)

    // One that exists already (made before this check, or not through the API) gives its teams no path at all.
    const adminUser = (await gw.app.accounts.get(ids.admin))!
    const legacy = await gw.app.accessAdmin.createOrganization(adminUser, { name: 'Legacy~' })
    const legacyTeam = await gw.app.accessAdmin.createTeam(adminUser, { name: 'Ops', organizationId: legacy.id })
    await gw.app.accounts.create({ username: 'tildemember', password: 'tildemember-password-long' })
    await grant(gw, 'tildemember', 'Team Member', legacyTeam.id)
    await grant(gw, 'tildemember', 'Organization Member', legacy.id)
    const answer = await gw.fetch('/realms/platform/protocol/openid-connect/token', {
      method: 'POST',
      body: new URLSearchParams({ client_id: 'end-users', grant_type: 'password', username: 'tildemember', password: 'tildemember-password-long' }),
    })
    assert.equal(answer.status, 200)
    const { groups } = decodeJwt((await json(answer)).access_token) as { groups: string[] }
    assert.deepEqual(groups, ['/Legacy~'])
  })

  it('takes a role back only for those who may give it: no member drops their own, no team admin their team\'s organization role', async () => {
    const own = (await call(gw, 'GET', `role_user_assignments/?user=${ids.member}&object_id=${a.team}&content_type__model=team`)).body.results[0]
    assert.equal((await call(gw, 'DELETE', `role_user_assignments/${own.id}/`, undefined, as('member'))).status, 403)
    const teamHeld = await call(gw, 'POST', 'role_team_assignments/', { role_definition: await roleId(gw, 'Organization Member'), team: a.team, object_id: a.organization })
    assert.equal(teamHeld.status, 201, JSON.stringify(teamHeld.body))
    assert.equal((await call(gw, 'DELETE', `role_team_assignments/${teamHeld.body.id}/`, undefined, as('teamadmin'))).status, 403)
    assert.equal((await call(gw, 'GET', `role_user_assignments/${own.id}/`)).status, 200)
    assert.equal((await call(gw, 'GET', `role_team_assignments/${teamHeld.body.id}/`)).status, 200)
    assert.equal((await call(gw, 'DELETE', `role_team_assignments/${teamHeld.body.id}/`)).status, 204)
  })

  it('keeps an organization admin from deleting, with their organization, the OAuth2 applications only superusers manage', async () => {
    const doomed = await createOrgAndTeam(gw, 'Doomed')
    await grant(gw, 'orgadmin', 'Organization Admin', doomed.organization)
    const application = await call(gw, 'POST', 'applications/', { name: 'Doomed app', client_type: 'confidential', authorization_grant_type: 'password', organization: doomed.organization })
    assert.equal(application.status, 201, JSON.stringify(application.body))
    assert.equal((await call(gw, 'DELETE', `applications/${application.body.id}/`, undefined, as('orgadmin'))).status, 403)
    const refused = await call(gw, 'DELETE', `organizations/${doomed.organization}/`, undefined, as('orgadmin'))
    assert.equal(refused.status, 403, JSON.stringify(refused.body))
    assert.equal(refused.body.code, 'permission_denied')
    assert.equal((await call(gw, 'GET', `organizations/${doomed.organization}/`)).status, 200)
    assert.equal((await call(gw, 'GET', `applications/${application.body.id}/`)).status, 200)
    // Once a superuser has taken the application away, the organization is its admins' to delete again.
    assert.equal((await call(gw, 'DELETE', `applications/${application.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'DELETE', `organizations/${doomed.organization}/`, undefined, as('orgadmin'))).status, 204)
  })

  it('keeps an organization admin from deleting, with a member, the OAuth2 applications the member owns', async () => {
    const owner = await call(gw, 'POST', 'users/', { username: 'app-owning-member', organizations: [a.organization] }, as('orgadmin'))
    assert.equal(owner.status, 201, JSON.stringify(owner.body))
    const application = await call(gw, 'POST', 'applications/', { name: 'Member app', client_type: 'public', authorization_grant_type: 'password', organization: a.organization, user: owner.body.id })
    assert.equal(application.status, 201, JSON.stringify(application.body))
    const refused = await call(gw, 'DELETE', `users/${owner.body.id}/`, undefined, as('orgadmin'))
    assert.equal(refused.status, 403, JSON.stringify(refused.body))
    assert.match(refused.body.detail, /owns OAuth2 applications/)
    assert.equal((await call(gw, 'GET', `users/${owner.body.id}/`)).status, 200)
    assert.equal((await call(gw, 'GET', `applications/${application.body.id}/`)).status, 200)
    assert.equal((await call(gw, 'DELETE', `applications/${application.body.id}/`)).status, 204)
    assert.equal((await call(gw, 'DELETE', `users/${owner.body.id}/`, undefined, as('orgadmin'))).status, 204)
  })

  it('refuses creating organizations and writing role definitions to all but superusers before the body is read, as the platform\'s permission classes do', async () => {
    const custom = await call(gw, 'POST', 'role_definitions/', { name: 'Body first', content_type: 'shared.team', permissions: ['shared.view_team'] })
    assert.equal(custom.status, 201, JSON.stringify(custom.body))
    for (const [who, auth] of Object.entries(everyone())) {
      for (const [method, path] of [['POST', 'organizations/'], ['POST', 'role_definitions/'], ['PATCH', `role_definitions/${custom.body.id}/`], ['PUT', `role_definitions/${custom.body.id}/`]]) {
        for (const body of [{}, { no_such_field: 1 }]) {
          const answer = await call(gw, method!, path!, body, auth)
          assert.equal(answer.status, 403, `${who} ${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`)
          assert.equal(answer.body.code, 'permission_denied')
        }
      }
    }
    assert.equal((await call(gw, 'GET', `role_definitions/${custom.body.id}/`)).body.name, 'Body first')
  })
})
