import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, demoWithRuledServices, grant, userId } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/** `users/{id}/access/`: what a user holds, as far as the caller sees it, and which services the rules open to them. */
describe('a user\'s access as the API shows it', () => {
  let gw: TestGateway
  const as = (name: string) => ({ authorization: basic(name, `${name}-password-long`) })
  const access = async (of: string, caller: string) => {
    const { status, body } = await call(gw, 'GET', `users/${await userId(gw, of)}/access/`, undefined, as(caller))
    assert.equal(status, 200, JSON.stringify(body))
    return body
  }

  before(async () => {
    // The test client connects from the loopback address.
    gw = await startGateway({
      config: demoWithRuledServices({
        inside: [{ allow: { networks: ['127.0.0.0/8', '::1'] } }],
        outside: [{ deny: { networks: ['127.0.0.0/8', '::1'] } }, { allow: { methods: ['GET'] } }],
      }),
    })
    for (const name of ['labmember', 'opsadmin', 'opsmember']) await gw.app.accounts.create({ username: name, password: `${name}-password-long` })
    const research = await createOrgAndTeam(gw, 'Research', 'Lab')
    const ops = await createOrgAndTeam(gw, 'Ops', 'Oncall')
    assert.equal((await grant(gw, 'labmember', 'Team Member', research.team)).status, 201)
    assert.equal((await grant(gw, 'labmember', 'Organization Member', ops.organization)).status, 201)
    assert.equal((await grant(gw, 'opsadmin', 'Organization Admin', ops.organization)).status, 201)
    assert.equal((await grant(gw, 'opsmember', 'Organization Member', ops.organization)).status, 201)
  })
  after(() => gw.close())

  it('names only the roles the caller sees the assignments of', async () => {
    assert.deepEqual((await access('labmember', 'labmember')).roles, ['Organization Member', 'Team Member'])
    const seenByOpsAdmin = await access('labmember', 'opsadmin')
    assert.deepEqual(seenByOpsAdmin.roles, ['Organization Member'])
    assert.deepEqual(seenByOpsAdmin.teams, [])
    assert.deepEqual(seenByOpsAdmin.organizations.map((o: any) => o.name), ['Ops'])
  })

  it('judges another user\'s services without the caller\'s address, and the caller\'s own from where they are', async () => {
    const services = (body: any) => Object.fromEntries(body.services.map((s: any) => [s.service, s.allowed]))
    assert.deepEqual([services(await access('labmember', 'labmember')).inside, services(await access('labmember', 'labmember')).outside], [true, false])
    const seenByOpsAdmin = services(await access('opsmember', 'opsadmin'))
    assert.deepEqual([seenByOpsAdmin.inside, seenByOpsAdmin.outside], [false, true], 'as from an address no rule names')
  })

  it('judges no services for a caller who does not see all of the user\'s memberships: the rules would tell the hidden ones', async () => {
    assert.equal((await access('labmember', 'opsadmin')).services, null)
    assert.ok(Array.isArray((await access('opsmember', 'opsadmin')).services))
    const bySuperuser = await call(gw, 'GET', `users/${await userId(gw, 'labmember')}/access/`)
    assert.ok(Array.isArray(bySuperuser.body.services), 'a superuser sees everything')
  })
})
