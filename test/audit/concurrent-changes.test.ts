import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { call, createOrgAndTeam } from '../helpers/access.ts'
import { startGateway, type TestGateway } from '../helpers/gateway.ts'
import { createTestDatabase } from '../helpers/postgres.ts'

/**
 * Changes of one object sent at once: each entry of the trail records what its own change changed from, as the
 * update found the row, so the entries chain from the first value to the last; one that changed nothing records nothing.
 */
for (const backend of ['sqlite', 'postgres'] as const) describe(`changes of one object at once, in the audit trail (${backend})`, () => {
  let gw: TestGateway
  let drop: (() => Promise<void>) | undefined
  let ids: { organization: number; team: number | undefined }
  let role: number
  let application: number
  let user: number

  before(async () => {
    const database = backend === 'postgres' ? await createTestDatabase() : undefined
    drop = database?.drop
    gw = await startGateway(database ? { databaseUrl: database.url } : {})
    ids = await createOrgAndTeam(gw, 'Chained', 'ChainedTeam')
    role = (await call(gw, 'POST', 'role_definitions/', { name: 'Chained Role', content_type: 'shared.team', permissions: ['shared.view_team'] })).body.id
    application = (await call(gw, 'POST', 'applications/', { name: 'Chained App', organization: ids.organization, client_type: 'confidential', authorization_grant_type: 'password' })).body.id
    user = (await gw.app.accounts.create({ username: 'chained', password: 'chained-password-long' })).id
  })
  after(async () => {
    await gw.close()
    await drop?.()
  })

  /** The changes of `field` recorded for the object, oldest first, as [before, after]. */
  async function fieldChanges(contentType: string, id: number, field: string): Promise<[unknown, unknown][]> {
    await gw.app.audit.flush()
    const entries = (await call(gw, 'GET', `activitystream/?operation=update&content_type=${contentType}&object_id=${id}&order_by=id&page_size=200`)).body.results
    return entries.map((entry: any) => entry.changes.changed_fields[field])
  }

  const objects = [
    ['organization', () => `organizations/${ids.organization}/`, 'description'], ['team', () => `teams/${ids.team}/`, 'description'],
    ['role_definition', () => `role_definitions/${role}/`, 'description'], ['application', () => `applications/${application}/`, 'description'],
    ['user', () => `users/${user}/`, 'first_name'],
  ] as const
  for (const [contentType, path, field] of objects) {
    it(`chains the entries of a ${contentType.replace('_', ' ')}'s changes sent at once`, async () => {
      const id = Number(path().split('/')[1])
      const values = ['v0', 'v1', 'v2', 'v3']
      const answers = await Promise.all(values.map((value) => call(gw, 'PATCH', path(), { [field]: value })))
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200, 200])
      const entries = await fieldChanges(contentType, id, field)
      assert.equal(entries.length, values.length, JSON.stringify(entries))
      // Followed from the first value, each entry's after is the next one's before (the entries are queued as the
      // requests end, which need not be the order their changes committed in), to the value the object has.
      const next = new Map(entries)
      assert.equal(next.size, entries.length, `two entries changed from one value: ${JSON.stringify(entries)}`)
      let value: unknown = ''
      for (let i = 0; i < entries.length; i++) {
        assert.ok(next.has(value), `no entry changes from ${JSON.stringify(value)}: ${JSON.stringify(entries)}`)
        value = next.get(value)
      }
      const last = (await call(gw, 'GET', path())).body[field]
      assert.equal(value, last)

      // The same value at once: one change, recorded once.
      await Promise.all([1, 2, 3].map(() => call(gw, 'PATCH', path(), { [field]: 'same' })))
      const after = await fieldChanges(contentType, id, field)
      assert.deepEqual(after.slice(entries.length), [[last, 'same']])
    })
  }
})
