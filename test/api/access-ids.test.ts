import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, roleId, userId } from '../helpers/access.ts'
import { gatewayBackends } from '../helpers/backends.ts'
import type { TestGateway } from '../helpers/gateway.ts'

/** Ids in request bodies, as numbers or as the strings the platform's clients send, checked as the path's ids are. */
for (const backend of gatewayBackends) {
  describe(`ids in access control bodies on ${backend.name}`, () => {
    let gw: TestGateway
    let lab: { organization: number; team: number | undefined }

    before(async () => {
      gw = await backend.start()
      lab = await createOrgAndTeam(gw, 'Research', 'Lab')
    })
    after(() => gw.close())

    for (const tooLarge of ['2147483648', '9999999999', 2147483648]) {
      it(`refuses the id ${JSON.stringify(tooLarge)}, beyond a 32-bit id, with 400 naming the field, and changes nothing`, async () => {
        const admin = await userId(gw, 'admin')
        const attempts = [
          { path: 'teams/', body: { name: 'Far', organization: tooLarge }, field: 'organization' },
          { path: 'role_user_assignments/', body: { role_definition: await roleId(gw, 'Team Member'), user: admin, object_id: tooLarge }, field: 'object_id' },
          { path: 'role_user_assignments/', body: { role_definition: tooLarge, user: admin, object_id: lab.team }, field: 'role_definition' },
          { path: 'role_team_assignments/', body: { role_definition: await roleId(gw, 'Organization Member'), team: tooLarge, object_id: lab.organization }, field: 'team' },
        ]
        for (const { path, body, field } of attempts) {
          const refused = await call(gw, 'POST', path, body)
          assert.equal(refused.status, 400, `${path} ${JSON.stringify(refused.body)}`)
          assert.ok(refused.body[field] ?? refused.body.errors?.[field], `${path}: ${JSON.stringify(refused.body)}`)
        }
        for (const list of [`teams/?organization=${tooLarge}`, `role_user_assignments/?object_id=${tooLarge}`, `role_team_assignments/?team=${tooLarge}`, `users/${tooLarge}/teams/`]) {
          const answer = await call(gw, 'GET', list)
          assert.ok([200, 400, 404].includes(answer.status), `${list}: ${answer.status} ${JSON.stringify(answer.body)}`)
          if (answer.status === 200) assert.equal(answer.body.count, 0)
        }
        assert.equal((await call(gw, 'GET', 'teams/?name=Far')).body.count, 0)
        assert.equal((await call(gw, 'GET', `role_user_assignments/?user=${admin}`)).body.count, 0)
      })
    }
  })
}
