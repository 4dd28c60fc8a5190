import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam, grant } from '../helpers/access.ts'
import { basic, startGateway, type TestGateway } from '../helpers/gateway.ts'

/**
 * The platform's user serializer reads is_superuser and is_active with Django REST framework's BooleanField
 * (TRUE_VALUES, FALSE_VALUES in rest_framework/fields.py): the platform's clients and forms send "yes", "1", 1 or
 * "True" as well as true, in any letter case since Django REST framework 3.15 ("yEs": it lowers text before it
 * looks). Only a superuser makes anyone a superuser, judged on the value as read: a spelling of true is true to the
 * guard as much as to the account.
 */
const TRUE_SPELLINGS: unknown[] = [true, 1, '1', 't', 'T', 'y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON', 'yEs', 'tRUE', 'oN']
const FALSE_SPELLINGS: unknown[] = [false, 0, '0', 'f', 'F', 'n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF', 'nO', 'fALSE', 'oFf']

describe('the users API reads booleans as the platform does', () => {
  let gw: TestGateway
  const ids: Record<string, number> = {}
  const password = (name: string) => `${name}-password-long`
  const as = (name: string) => ({ authorization: basic(name, password(name)) })

  before(async () => {
    gw = await startGateway()
    for (const name of ['subject', 'plain', 'orgadmin', 'member']) ids[name] = (await gw.app.accounts.create({ username: name, password: password(name) })).id
    const { organization } = await createOrgAndTeam(gw, 'Booleans')
    assert.equal((await grant(gw, 'orgadmin', 'Organization Admin', organization)).status, 201)
    assert.equal((await grant(gw, 'member', 'Organization Member', organization)).status, 201)
  })
  after(() => gw.close())

  it('takes every spelling of true and false BooleanField takes from a superuser', async () => {
    for (const [index, yes] of TRUE_SPELLINGS.entries()) {
      const no = FALSE_SPELLINGS[index]
      const made = await call(gw, 'PATCH', `users/${ids.subject}/`, { is_superuser: yes })
      assert.equal(made.status, 200, `${JSON.stringify(yes)}: ${JSON.stringify(made.body)}`)
      assert.equal(made.body.is_superuser, true, JSON.stringify(yes))
      const unmade = await call(gw, 'PATCH', `users/${ids.subject}/`, { is_superuser: no, is_active: no })
      assert.equal(unmade.status, 200, `${JSON.stringify(no)}: ${JSON.stringify(unmade.body)}`)
      assert.deepEqual([unmade.body.is_superuser, unmade.body.is_active], [false, false], JSON.stringify(no))
      const enabled = await call(gw, 'PUT', `users/${ids.subject}/`, { username: 'subject', is_active: yes })
      assert.equal(enabled.body.is_active, true, JSON.stringify(yes))
    }
    const created = await call(gw, 'POST', 'users/', { username: 'made-by-words', is_superuser: 'yes', is_active: 'off', password: password('made') })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual([created.body.is_superuser, created.body.is_active], [true, false])
  })

  it('refuses what BooleanField refuses, naming the field, and changes nothing', async () => {
    for (const value of ['maybe', '', ' true', 2, -1, 0.5, null, [], {}, 'yess']) {
      const refused = await call(gw, 'PATCH', `users/${ids.subject}/`, { is_superuser: value, first_name: 'changed' })
      assert.equal(refused.status, 400, JSON.stringify(value))
      assert.deepEqual(refused.body.errors.is_superuser, [value === null ? 'This field may not be null.' : 'Must be a valid boolean.'], JSON.stringify(value))
    }
    const subject = await call(gw, 'GET', `users/${ids.subject}/`)
    assert.deepEqual([subject.body.first_name, subject.body.is_superuser], ['', false])
  })

  it('refuses every spelling of true in is_superuser from a user on their own record, and changes nothing', async () => {
    for (const yes of TRUE_SPELLINGS) {
      const refused = await call(gw, 'PATCH', `users/${ids.plain}/`, { is_superuser: yes, first_name: 'Plain' }, as('plain'))
      assert.equal(refused.status, 403, JSON.stringify(yes))
      assert.equal(refused.body.code, 'permission_denied', JSON.stringify(yes))
    }
    // Judged before the rest of the body is read: the flag's refusal is the answer, whatever else is wrong.
    const judgedFirst = await call(gw, 'PATCH', `users/${ids.plain}/`, { is_superuser: 'yes', email: 'not an address' }, as('plain'))
    assert.deepEqual([judgedFirst.status, judgedFirst.body.code], [403, 'permission_denied'])
    const plain = await call(gw, 'GET', `users/${ids.plain}/`)
    assert.deepEqual([plain.body.is_superuser, plain.body.first_name], [false, ''])
    for (const no of FALSE_SPELLINGS) {
      const kept = await call(gw, 'PATCH', `users/${ids.plain}/`, { is_superuser: no, first_name: 'Plain' }, as('plain'))
      assert.equal(kept.status, 200, `${JSON.stringify(no)}: ${JSON.stringify(kept.body)}`)
      assert.equal(kept.body.is_superuser, false)
    }
  })

  it('refuses every spelling of true in is_superuser from an organization admin on a member, and changes nothing', async () => {
    for (const yes of TRUE_SPELLINGS) {
      for (const method of ['PATCH', 'PUT']) {
        const refused = await call(gw, method, `users/${ids.member}/`, { username: 'member', is_superuser: yes, last_name: 'Member' }, as('orgadmin'))
        assert.equal(refused.status, 403, `${method} ${JSON.stringify(yes)}`)
        assert.equal(refused.body.code, 'permission_denied')
      }
    }
    const member = await call(gw, 'GET', `users/${ids.member}/`)
    assert.deepEqual([member.body.is_superuser, member.body.last_name], [false, ''])
    for (const no of FALSE_SPELLINGS) {
      const kept = await call(gw, 'PATCH', `users/${ids.member}/`, { is_superuser: no, is_active: 'yes', last_name: 'Member' }, as('orgadmin'))
      assert.equal(kept.status, 200, `${JSON.stringify(no)}: ${JSON.stringify(kept.body)}`)
      assert.deepEqual([kept.body.is_superuser, kept.body.is_active, kept.body.last_name], [false, true, 'Member'])
    }
  })

  it('takes a read-only switch sent back in any spelling of the value it has, and no other', async () => {
    for (const no of FALSE_SPELLINGS) {
      const kept = await call(gw, 'PATCH', `users/${ids.plain}/`, { is_platform_auditor: no, is_system_auditor: no, external: no }, as('plain'))
      assert.equal(kept.status, 200, `${JSON.stringify(no)}: ${JSON.stringify(kept.body)}`)
    }
    for (const yes of ['yes', 1, 'True']) {
      const refused = await call(gw, 'PATCH', `users/${ids.plain}/`, { is_platform_auditor: yes }, as('plain'))
      assert.equal(refused.status, 400, JSON.stringify(yes))
      assert.deepEqual(refused.body.errors.is_platform_auditor, ['This field is read-only.'])
    }
    assert.equal((await call(gw, 'GET', `users/${ids.plain}/`)).body.is_platform_auditor, false)
  })
})
