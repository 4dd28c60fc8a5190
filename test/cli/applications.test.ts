import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ADMIN_PASSWORD, adminAuth, json, runCli, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { applicationGrantStatus, tokenRequest } from '../helpers/oidc.ts'

/**
 * `gatehouse applications rotate-secret`: a confidential application's new secret printed once, taken by the running
 * gateway at once, the old one ending at once or after `--grace-seconds`, recorded in the activity stream as the
 * API's rotation is.
 */
describe('gatehouse applications rotate-secret', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  let made = 0
  const application = async (clientType = 'confidential', name = `cli bot ${++made}`) => {
    const created = await gw.fetch('/api/gateway/v1/applications/', {
      method: 'POST',
      headers: { ...adminAuth, 'content-type': 'application/json' },
      body: JSON.stringify({ name, client_type: clientType, authorization_grant_type: 'password' }),
    })
    assert.equal(created.status, 201)
    return json(created)
  }
  const rotate = (...args: string[]) => runCli(['applications', 'rotate-secret', ...args, '--data-dir', gw.dataDir])
  const grantStatus = (clientId: string, secret: string) => applicationGrantStatus(gw, clientId, secret)

  it('prints only the new secret, which the running gateway takes, and ends the old one at once', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const rotated = await rotate('--id', String(id))
    assert.equal(rotated.code, 0, rotated.stderr)
    const secret = rotated.stdout.trim()
    assert.match(secret, /^[A-Za-z0-9_-]{64}$/)
    assert.match(rotated.stderr, new RegExp(`rotated the secret of application ${id} \\(cli bot \\d+\\); the previous one no longer works`))
    assert.equal(await grantStatus(clientId, secret), 201)
    assert.equal(await grantStatus(clientId, old), 401)
  })

  it('writes the application\'s name with its control characters escaped, as the other commands do', async () => {
    const { id } = await application('confidential', 'bot\u001b[2J\rrotated nothing')
    const rotated = await rotate('--id', String(id))
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.ok(!/[\u0000-\u001f]/.test(rotated.stderr.replace(/\n$/, '')), JSON.stringify(rotated.stderr))
    assert.match(rotated.stderr, /\(bot\\u001b\[2J\\u000drotated nothing\)/)
  })

  it('keeps the old secret working for --grace-seconds, and records the rotation as the API does', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    // The creation's entry written before the command writes its own, as a person typing the command would find it:
    // the trail writes the API's entries every flush_ms, and a fast command could otherwise come first.
    await gw.app.audit.flush()
    const before = Date.now()
    const rotated = await rotate('--id', String(id), '--grace-seconds', '600')
    assert.equal(rotated.code, 0, rotated.stderr)
    const until = Date.parse(/works until (\S+)$/m.exec(rotated.stderr)?.[1] ?? '')
    assert.ok(until >= before + 599_000 && until <= Date.now() + 601_000, rotated.stderr)
    assert.equal(await grantStatus(clientId, old), 201, 'within the grace period')
    assert.equal(await grantStatus(clientId, rotated.stdout.trim()), 201)

    const stream = await json(await gw.fetch(`/api/gateway/v1/activitystream/?content_type=application&object_id=${id}&order_by=-id`, { headers: adminAuth }))
    const entry = stream.results[0]
    assert.equal(entry.operation, 'update')
    assert.deepEqual(entry.changes.changed_fields.client_secret, ['$encrypted$', '$encrypted$'])
    assert.equal(entry.changes.added_fields.previous_secret_expires, new Date(until).toISOString())
    assert.ok(!JSON.stringify(stream).includes(rotated.stdout.trim()), 'the secret is never recorded')
  })

  it('keeps the application\'s secret when the new one cannot be written', async () => {
    const { id, client_id: clientId, client_secret: old } = await application()
    const lost = await runCli(['applications', 'rotate-secret', '--id', String(id), '--data-dir', gw.dataDir], { stdout: 'closed' })
    assert.equal(lost.code, 1, lost.stderr)
    assert.match(lost.stderr, new RegExp(`^gatehouse: the new secret could not be written \\(.*EPIPE.*\\); application ${id} keeps its secret`))
    assert.equal(await grantStatus(clientId, old), 201)
  })

  it('refuses a public application, an unknown id and a grace past 30 days, changing nothing', async () => {
    const { id } = await application('public')
    const { id: confidential, client_id: clientId, client_secret: old } = await application()
    for (const [args, message] of [
      [['--id', String(id)], `application ${id} is public: it has no secret to rotate`],
      [['--id', '999999'], 'no such application: 999999'],
      [['--id', '99999999999'], 'no such application: 99999999999'],
      [['--id', String(confidential), '--grace-seconds', '2592001'], '--grace-seconds must be a whole number from 0 to 2592000, got "2592001"'],
      [['--id', String(confidential), '--grace-seconds', '-1'], '--grace-seconds must be a whole number from 0 to 2592000, got "-1"'],
    ] as const) {
      const refused = await rotate(...args)
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stdout, '')
      assert.equal(refused.stderr.trim(), `gatehouse: ${message}`)
    }
    assert.equal(await grantStatus(clientId, old), 201)
  })
})

/**
 * `gatehouse applications list|show|create|update|delete`: the API's fields as options, checked as the API checks
 * them, with the API's effects on a running gateway and its entries in the activity stream (by the command line).
 */
describe('gatehouse applications create, list, show, update and delete', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  const cli = (...args: string[]) => runCli(['applications', ...args, '--data-dir', gw.dataDir])
  const api = async (method: string, path: string, body?: unknown) => gw.fetch(`/api/gateway/v1/${path}`, {
    method, headers: { ...adminAuth, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const shown = async (id: number) => json(await api('GET', `applications/${id}/`))
  const count = async () => (await json(await api('GET', 'applications/'))).count
  const history = async (id: number) => (await json(await api('GET', `activitystream/?content_type=application&object_id=${id}&order_by=id`))).results
  /** `created application N (NAME)`, then `client_id: ...` and, for a confidential one, `client_secret: ...`. */
  const created = (stdout: string): { id: number; client_id: string; client_secret?: string } => {
    const [first, ...fields] = stdout.trimEnd().split('\n')
    const id = Number(/^created application (\d+) \(/.exec(first!)?.[1])
    const printed = Object.fromEntries(fields.map((line) => line.split(': ') as [string, string]))
    assert.deepEqual(Object.keys(printed), ['client_id', ...('client_secret' in printed ? ['client_secret'] : [])], stdout)
    return { id, client_id: printed.client_id!, client_secret: printed.client_secret }
  }
  /** The status `request` answers, asked again until it is `expected` (another process's change reaches the gateway by its bus) or 5 seconds passed. */
  const statusWithin = async (request: () => Promise<Response>, expected: number) => {
    const deadline = Date.now() + 5000
    for (;;) {
      const { status } = await request()
      if (status === expected || Date.now() > deadline) return status
      await sleep(50)
    }
  }
  /** A request to the API with an access token the application got by the password grant. */
  const signedInThrough = async ({ client_id: clientId, client_secret: secret }: { client_id: string; client_secret?: string }) => {
    const token = await tokenRequest(gw, { grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, scope: 'read' },
      { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` })
    assert.equal(token.status, 200, JSON.stringify(token.body))
    return () => gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Bearer ${token.body.access_token}` } })
  }
  const create = async (name: string, ...args: string[]) => {
    const made = await cli('create', '--demo', '--name', name, ...args)
    assert.equal(made.code, 0, made.stderr)
    return created(made.stdout)
  }

  it('creates a confidential application whose secret, printed once, works at once at the running gateway\'s token endpoint', async () => {
    const made = await create('ci bot', '--client-type', 'confidential', '--authorization-grant-type', 'password', '--description', 'nightly runs')
    assert.match(made.client_secret!, /^[A-Za-z0-9_-]{64}$/)
    assert.equal(await applicationGrantStatus(gw, made.client_id!, made.client_secret!), 201)
    const application = await shown(made.id)
    assert.equal(application.client_id, made.client_id)
    assert.equal(application.client_secret, '$encrypted$', 'shown once')
    assert.deepEqual([application.name, application.description, application.client_type, application.authorization_grant_type, application.pkce_required, application.user],
      ['ci bot', 'nightly runs', 'confidential', 'password', true, null])
    const [entry] = await history(made.id)
    assert.equal(entry.operation, 'create')
    assert.equal(entry.auth_method, 'cli')
    assert.ok(!JSON.stringify(entry).includes(made.client_secret!), 'the secret is never recorded')
  })

  it('creates a public application with the API\'s fields, printing no secret, and as the API answers with --json', async () => {
    const organization = await json(await api('POST', 'organizations/', { name: 'cli apps' }))
    const made = await create('portal', '--client-type', 'public', '--authorization-grant-type', 'authorization-code',
      '--redirect-uris', 'https://portal.example/cb https://portal.example/cb2', '--pkce-required', 'false', '--organization', String(organization.id), '--user', '1')
    assert.equal(made.client_secret, undefined)
    const application = await shown(made.id)
    assert.deepEqual([application.redirect_uris, application.pkce_required, application.organization, application.user, 'client_secret' in application],
      ['https://portal.example/cb https://portal.example/cb2', false, organization.id, 1, false])

    const answered = await cli('create', '--demo', '--name', 'json bot', '--client-type', 'confidential', '--authorization-grant-type', 'password', '--json')
    assert.equal(answered.code, 0, answered.stderr)
    const body = JSON.parse(answered.stdout)
    assert.equal(body.name, 'json bot')
    assert.equal(await applicationGrantStatus(gw, body.client_id, body.client_secret), 201)
  })

  it('refuses what the API refuses, naming the options in the API\'s words, and creates nothing', async () => {
    const organization = await json(await api('POST', 'organizations/', { name: 'taken names' }))
    await create('twin', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', String(organization.id))
    const before = await count()
    for (const [args, message] of [
      [['--name', '', '--client-type', 'confidential', '--authorization-grant-type', 'password'], '--name: This field may not be blank.'],
      [['--name', 'x', '--client-type', 'secret', '--authorization-grant-type', 'password'], '--client-type: "secret" is not a valid choice.'],
      [['--name', 'x', '--authorization-grant-type', 'password'], '--client-type: This field is required.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'authorization-code'], '--redirect-uris: Redirect URIs are required for the authorization-code grant.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--pkce-required', 'maybe'], '--pkce-required: Must be a valid boolean.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', '99999'], '--organization: Invalid pk "99999" - object does not exist.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--user', '99999'], '--user: Invalid pk "99999" - object does not exist.'],
      // A number beyond any id names none, however long, quoted as given: the platform's lookup finds no object.
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', '99999999999'], '--organization: Invalid pk "99999999999" - object does not exist.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--user', `000${'9'.repeat(30)}`], `--user: Invalid pk "000${'9'.repeat(30)}" - object does not exist.`],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', '-99999999999'], '--organization: Invalid pk "-99999999999" - object does not exist.'],
      // More digits than Python's int() reads from text are a value of the wrong type there.
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', '1'.repeat(4301)], '--organization: Incorrect type. Expected pk value, received str.'],
      [['--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', 'abc'], '--organization: Incorrect type. Expected pk value, received str.'],
      [['--name', 'twin', '--client-type', 'public', '--authorization-grant-type', 'password', '--organization', String(organization.id)], 'The fields name, organization must make a unique set.'],
    ] as const) {
      const refused = await cli('create', '--demo', ...args)
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stdout, '')
      assert.equal(refused.stderr.trim(), `gatehouse: ${message}`)
    }
    const noRealm = await cli('create', '--name', 'x', '--client-type', 'public', '--authorization-grant-type', 'password')
    assert.equal(noRealm.code, 2, noRealm.stderr)
    assert.match(noRealm.stderr, /^gatehouse: no realm in the configuration serves OAuth2 applications/)
    assert.equal(await count(), before)
  })

  it('deletes the application again when its secret cannot be written, recording both', async () => {
    const before = await count()
    const lost = await runCli(['applications', 'create', '--demo', '--name', 'unwritten', '--client-type', 'confidential', '--authorization-grant-type', 'password', '--data-dir', gw.dataDir], { stdout: 'closed' })
    assert.equal(lost.code, 1, lost.stderr)
    const id = Number(/application (\d+) was deleted again/.exec(lost.stderr)?.[1])
    assert.match(lost.stderr, /^gatehouse: the secret of the new application could not be written \(.*EPIPE.*\)/)
    assert.equal(await count(), before)
    assert.deepEqual((await history(id)).map((entry: { operation: string }) => entry.operation), ['create', 'delete'])
  })

  it('lists and shows applications as the API shows them', async () => {
    const made = await create('listed', '--client-type', 'confidential', '--authorization-grant-type', 'password')
    const listed = await cli('list', '--json')
    assert.equal(listed.code, 0, listed.stderr)
    const fromApi = await json(await api('GET', 'applications/?page_size=200'))
    assert.deepEqual(JSON.parse(listed.stdout), fromApi.results)
    const table = await cli('list')
    assert.match(table.stdout, /^ID +NAME +CLIENT_ID +CLIENT_TYPE +GRANT_TYPE +ORGANIZATION\n/)
    assert.match(table.stdout, new RegExp(`^${made.id} +listed +${made.client_id} +confidential +password$`, 'm'))
    assert.ok(!table.stdout.includes(made.client_secret!) && !listed.stdout.includes(made.client_secret!))
    const one = await cli('show', '--id', String(made.id))
    assert.equal(one.code, 0, one.stderr)
    assert.deepEqual(JSON.parse(one.stdout), await shown(made.id))
    const missing = await cli('show', '--id', '999999')
    assert.deepEqual([missing.code, missing.stderr.trim()], [2, 'gatehouse: no such application: 999999'])
  })

  it('updates the fields given, ending the old grant\'s tokens as the API does, and refuses bad input changing nothing', async () => {
    const made = await create('switching', '--client-type', 'confidential', '--authorization-grant-type', 'password')
    const me = await signedInThrough(made)
    assert.equal((await me()).status, 200)
    const before = await shown(made.id)
    for (const [args, message] of [
      [[], 'nothing to change: give at least one of --name, --description, --organization, --user, --authorization-grant-type, --redirect-uris, --pkce-required'],
      [['--authorization-grant-type', 'authorization-code'], '--redirect-uris: Redirect URIs are required for the authorization-code grant.'],
      [['--name', ' '], '--name: This field may not be blank.'],
      [['--redirect-uris', 'https://a.example/#x'], '--redirect-uris: Enter space-separated absolute http(s) URLs without a fragment.'],
      [['--organization', '99999999999'], '--organization: Invalid pk "99999999999" - object does not exist.'],
    ] as const) {
      const refused = await cli('update', '--id', String(made.id), ...args)
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr.trim(), `gatehouse: ${message}`)
    }
    assert.deepEqual(await shown(made.id), before)

    const updated = await cli('update', '--id', String(made.id), '--name', 'switched', '--authorization-grant-type', 'authorization-code', '--redirect-uris', 'https://app.example/cb', '--pkce-required', 'no')
    assert.equal(updated.code, 0, updated.stderr)
    assert.equal(updated.stdout, `updated application ${made.id} (switched)\n`)
    const after = await shown(made.id)
    assert.deepEqual([after.name, after.authorization_grant_type, after.redirect_uris, after.pkce_required], ['switched', 'authorization-code', 'https://app.example/cb', false])
    const entry = (await history(made.id)).at(-1)
    assert.deepEqual([entry.operation, entry.auth_method, entry.changes.changed_fields.name], ['update', 'cli', ['switching', 'switched']])
    assert.equal(await statusWithin(me, 401), 401, 'the old grant\'s access token ends in the running gateway')
  })

  it('deletes an application: its client and its tokens are refused at once by the running gateway', async () => {
    const made = await create('doomed', '--client-type', 'confidential', '--authorization-grant-type', 'password')
    const me = await signedInThrough(made)
    assert.equal((await me()).status, 200)
    const deleted = await cli('delete', '--id', String(made.id))
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.equal(deleted.stdout, `deleted application ${made.id} (doomed)\n`)
    assert.equal((await api('GET', `applications/${made.id}/`)).status, 404)
    assert.equal(await applicationGrantStatus(gw, made.client_id!, made.client_secret!), 401)
    assert.equal(await statusWithin(me, 401), 401, 'its access token ends in the running gateway')
    assert.deepEqual((await history(made.id)).map((e: { operation: string; auth_method: string }) => [e.operation, e.auth_method]), [['create', 'cli'], ['delete', 'cli']])
    const again = await cli('delete', '--id', String(made.id))
    assert.deepEqual([again.code, again.stderr.trim()], [2, `gatehouse: no such application: ${made.id}`])
  })
})
