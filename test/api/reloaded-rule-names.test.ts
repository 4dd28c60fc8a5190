import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Config } from '../../src/config/schema.ts'
import { demoConfigFile, loadConfigFile, validateConfig } from '../../src/config/load.ts'
import { call, createOrgAndTeam, demoWithRuledServices, grant, userId } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

const password = (name: string) => `${name}-password-long`
const as = (name: string) => ({ authorization: basic(name, password(name)) })

const FIRST = { payroll: [{ allow: { organizations: ['Staff'], methods: ['GET'] } }] }
const RELOADED = {
  payroll: [
    { deny: { teams: [{ organization: 'Staff', team: 'Interns' }] } },
    { allow: { users: ['hana', 'carol'] } },
    { allow: { organizations: ['Staff'], methods: ['GET'] } },
  ],
}

/**
 * What access rules name (usernames, teams, organizations) is kept from organization admins, who could otherwise take
 * over an account a rule gives a service to, or rename a team out of a `deny`: by the rules running, after a reload
 * of the configuration file (SIGHUP) as at start.
 */
describe('names in access rules a reload brought', () => {
  let gw: TestGateway
  let interns: number

  before(async () => {
    gw = await startGateway({ config: demoWithRuledServices(FIRST) })
    for (const name of ['orgadmin', 'carol', 'dave']) await gw.app.accounts.create({ username: name, password: password(name) })
    const made = await createOrgAndTeam(gw, 'Staff', 'Interns')
    interns = made.team!
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', made.organization)).status, 201)
    for (const member of ['carol', 'dave']) assert.equal((await grant(gw, member, 'Organization Member', made.organization)).status, 201)
  })
  after(() => gw.close())

  /** The running configuration with the services of `services`, validated as a reloaded file is. */
  const withServices = (services: Record<string, unknown[]>): Config => ({ ...gw.app.config, services: validateConfig({ ...loadConfigFile(demoConfigFile), ...demoWithRuledServices(services) }).services })

  it('keeps the usernames, teams and organizations of the reloaded rules from organization admins, and frees those it dropped', async () => {
    gw.app.reloadServices(withServices(RELOADED))
    const created = await call(gw, 'POST', 'users/', { username: 'hana', password: password('hana') }, as('orgadmin'))
    assert.deepEqual([created.status, created.body.code], [403, 'permission_denied'], JSON.stringify(created.body))
    const carol = await userId(gw, 'carol')
    const takeover = await call(gw, 'PATCH', `users/${carol}/`, { password: 'taken-over-password' }, as('orgadmin'))
    assert.equal(takeover.status, 403, JSON.stringify(takeover.body))
    const renamed = await call(gw, 'PATCH', `teams/${interns}/`, { name: 'Interns2' }, as('orgadmin'))
    assert.equal(renamed.status, 403, JSON.stringify(renamed.body))
    const deleted = await call(gw, 'DELETE', `teams/${interns}/`, undefined, as('orgadmin'))
    assert.equal(deleted.status, 403, JSON.stringify(deleted.body))
    // Nothing changed: carol signs in with her own password, the team keeps its name.
    assert.equal((await call(gw, 'GET', 'me/', undefined, as('carol'))).status, 200)
    assert.equal((await call(gw, 'GET', `teams/${interns}/`)).body.name, 'Interns')
    // A member no rule names stays the organization admin's to change.
    assert.equal((await call(gw, 'PATCH', `users/${await userId(gw, 'dave')}/`, { first_name: 'Dave' }, as('orgadmin'))).status, 200)

    // Reloaded back: the names the rules no longer use are the organization admin's again.
    gw.app.reloadServices(withServices(FIRST))
    assert.equal((await call(gw, 'PATCH', `users/${carol}/`, { first_name: 'Carol' }, as('orgadmin'))).status, 200)
    assert.equal((await call(gw, 'PATCH', `teams/${interns}/`, { description: 'now free' }, as('orgadmin'))).status, 200)
    const free = await call(gw, 'POST', 'users/', { username: 'hana', password: password('hana') }, as('orgadmin'))
    assert.equal(free.status, 201, JSON.stringify(free.body))
  })
})
