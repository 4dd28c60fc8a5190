import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { gatewayBackends } from '../helpers/backends.ts'
import { adminAuth, json, type TestGateway } from '../helpers/gateway.ts'

/** The platform's list filters, applied in the database: the same answers on both backends. */
for (const backend of gatewayBackends) {
  describe(`list filters on ${backend.name}`, () => {
    let gw: TestGateway
    before(async () => {
      gw = await backend.start()
      await gw.app.accounts.create({ username: 'Alice', email: 'alice@example.com', firstName: 'Alice' })
      await gw.app.accounts.create({ username: 'alfred', email: 'alfred@example.org', lastName: '50%_off' })
      await gw.app.accounts.create({ username: 'bob', email: 'bob@example.com', isSuperuser: true })
      await gw.app.accounts.create({ username: 'obrien', lastName: "O'Brien", email: '', isActive: false })
    })
    after(() => gw.close())

    const names = async (query: string) => {
      const response = await gw.fetch(`/api/gateway/v1/users/?${query}`, { headers: adminAuth })
      const body = await json(response)
      assert.equal(response.status, 200, `${query}: ${JSON.stringify(body)}`)
      assert.equal(body.count, body.results.length, query)
      return body.results.map((user: { username: string }) => user.username).filter((name: string) => name !== 'admin')
    }
    const refused = async (query: string, field: string) => {
      const response = await gw.fetch(`/api/gateway/v1/users/?${query}`, { headers: adminAuth })
      const body = await json(response)
      assert.equal(response.status, 400, query)
      assert.equal(body.code, 'invalid')
      assert.ok(body.errors[field], `${query}: ${JSON.stringify(body)}`)
    }

    it('filters on text fields with every lookup, case as the lookup says', async () => {
      assert.deepEqual(await names('username=Alice'), ['Alice'])
      assert.deepEqual(await names('username=alice'), [])
      assert.deepEqual(await names('username__iexact=alice'), ['Alice'])
      assert.deepEqual(await names('username__contains=A'), ['Alice'])
      assert.deepEqual(await names('username__icontains=A'), ['Alice', 'alfred'])
      assert.deepEqual(await names('username__startswith=al'), ['alfred'])
      assert.deepEqual(await names('username__istartswith=al'), ['Alice', 'alfred'])
      assert.deepEqual(await names('email__endswith=.org'), ['alfred'])
      assert.deepEqual(await names('email__iendswith=.COM').then((list) => list.sort()), ['Alice', 'bob'])
      assert.deepEqual(await names(`last_name=${encodeURIComponent("O'Brien")}`), ['obrien'])
    })

    it('folds letters of every script for the case-insensitive lookups and search, the same on both backends', async () => {
      const organization = async (name: string) => json(await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name }) }))
      for (const name of ['Übersee', 'Σίσυφος', 'İstanbul']) assert.ok((await organization(name)).id, name)
      const found = async (query: string) => {
        const body = await json(await gw.fetch(`/api/gateway/v1/organizations/?${query}`, { headers: adminAuth }))
        return body.results.map((org: { name: string }) => org.name)
      }
      for (const [query, name] of [['name__iexact=übersee', 'Übersee'], ['name__iexact=ÜBERSEE', 'Übersee'], ['name__icontains=BERS', 'Übersee'], ['name__istartswith=üb', 'Übersee'],
        ['search=σίσυφ', 'Σίσυφος'], ['name__iendswith=ΣΊΣΥΦΟς', 'Σίσυφος'], ['name__iendswith=RSEE', 'Übersee'], ['name__iexact=İstanbul', 'İstanbul'], ['search=İstan', 'İstanbul']] as const) {
        assert.deepEqual(await found(query), [name], query)
      }
      assert.deepEqual(await found('name=übersee'), [], 'an exact lookup keeps case')
    })

    it('orders empty values last, and first when descending, as PostgreSQL and so the platform do', async () => {
      const order = async (query: string) => {
        const body = await json(await gw.fetch(`/api/gateway/v1/role_definitions/?${query}&page_size=100`, { headers: adminAuth }))
        return body.results.map((role: { content_type: string | null }) => role.content_type)
      }
      const ascending = await order('order_by=content_type')
      assert.ok(ascending.includes(null) && ascending.some((type: string | null) => type !== null), JSON.stringify(ascending))
      assert.equal(ascending.at(-1), null, JSON.stringify(ascending))
      assert.equal(ascending.indexOf(null), ascending.length - ascending.filter((type: string | null) => type === null).length)
      assert.equal((await order('order_by=-content_type'))[0], null)
    })

    it('refuses an impossible date or time with Django\'s words for it, and takes the forms Django takes', async () => {
      const errorOf = async (query: string) => {
        const response = await gw.fetch(`/api/gateway/v1/users/?${query}`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 400, query)
        assert.equal(body.code, 'invalid')
        return String(body.errors[query.split('=')[0]!])
      }
      const badDateTime = (value: string) => `“${value}” value has the correct format (YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ]) but it is an invalid date/time.`
      for (const value of ['2020-02-30T00:00:00Z', '2021-02-29T00:00:00Z', '2020-13-01T00:00:00Z', '2020-01-01T24:00:00Z', '2020-01-01T12:60:00Z', '2020-01-01T12:00:60Z', '2020-04-31 10:10']) {
        assert.equal(await errorOf(`created__gt=${encodeURIComponent(value)}`), badDateTime(value))
      }
      assert.equal(await errorOf('created__lt=2020-02-30'), '“2020-02-30” value has the correct format (YYYY-MM-DD) but it is an invalid date.')
      assert.equal(await errorOf('created__lt=yesterday'), '“yesterday” value has an invalid format. It must be in YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.')
      assert.equal(await errorOf('created__lt=March%201%202020'), '“March 1 2020” value has an invalid format. It must be in YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.')
      assert.equal(await errorOf('created__in=2020-01-01,2020-02-30'), '“2020-02-30” value has the correct format (YYYY-MM-DD) but it is an invalid date.')
      for (const value of ['2020-02-29T00:00:00Z', '2000-01-01', '2000-01-01 00:00', '2000-1-2T3:04', '2000-01-01T00:00:00.123456+01:00', '2000-01-01T00:00:00,5-0130', '2000-01-01T00:00:00Z']) {
        assert.deepEqual(await names(`created__lt=${encodeURIComponent(value)}`), [], value)
        assert.equal((await names(`created__gte=${encodeURIComponent(value)}`)).length, 4, value)
      }
    })

    it('takes the ISO 8601 forms Python\'s fromisoformat reads first, as Django\'s parse_datetime does, and refuses their impossible dates as an unknown format', async () => {
      const accepted = ['20000101', '20000101T000000', '20000101T0000', '20000101T00', '2000-01-01T00', '20000101 000000.5Z', '20000101T000000+0100', '2000-01-01T00:00:00+01:00:30', '2000-W01', '2000-W01-1', '2000W011T1200', '2000-01-01x00:00', '2000-01-01T00:00.5']
      for (const value of accepted) {
        assert.deepEqual(await names(`created__lt=${encodeURIComponent(value)}`), [], value)
        assert.equal((await names(`created__gte=${encodeURIComponent(value)}`)).length, 4, value)
        assert.equal((await names(`created__lt=${encodeURIComponent(value.replace('2000', '2999'))}`)).length, 4, value)
      }
      for (const value of ['20200230T000000', '20200101T2400', '2020-01-01T12:30:00x', '20200101T000000+01:', '2020-W54-1', '2020-W01-8', '202001']) {
        const response = await gw.fetch(`/api/gateway/v1/users/?created__gt=${encodeURIComponent(value)}`, { headers: adminAuth })
        assert.equal(response.status, 400, value)
        assert.deepEqual((await json(response)).errors.created__gt, [`“${value}” value has an invalid format. It must be in YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.`], value)
      }
    })

    it('treats % and _ in a search value as plain characters', async () => {
      assert.deepEqual(await names('last_name__icontains=50%25_'), ['alfred'])
      assert.deepEqual(await names('username__icontains=%25'), [])
      assert.deepEqual(await names('username__icontains=_'), [])
    })

    it('filters on ids, booleans and times, with in, isnull and comparisons', async () => {
      const all = (await json(await gw.fetch('/api/gateway/v1/users/?order_by=id', { headers: adminAuth }))).results
      const [alice, alfred] = [all.find((u: any) => u.username === 'Alice'), all.find((u: any) => u.username === 'alfred')]
      assert.deepEqual(await names(`id=${alfred.id}`), ['alfred'])
      assert.deepEqual(await names(`id__in=${alice.id},${alfred.id}`), ['Alice', 'alfred'])
      assert.deepEqual(await names(`id__gt=${alfred.id}&id__lte=${alfred.id + 1}`), ['bob'])
      assert.deepEqual(await names('is_superuser=true'), ['bob'])
      assert.deepEqual(await names('is_active=False'), ['obrien'])
      assert.deepEqual(await names('last_login__isnull=false'), [])
      assert.deepEqual((await names('last_login__isnull=true')).length, 4)
      assert.deepEqual((await names(`created__gte=${encodeURIComponent(alice.created)}`)).length, 4)
      assert.deepEqual(await names('created__lt=2000-01-01T00:00:00Z'), [])
    })

    it('reads values as django-ansible-base does: t and f as booleans, None and null as no related object', async () => {
      assert.deepEqual(await names('is_superuser=t'), ['bob'])
      assert.deepEqual(await names('is_active=F&email__isnull=f'), ['obrien'])
      const organization = await json(await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Filtered' }) }))
      const team = await json(await gw.fetch('/api/gateway/v1/teams/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Listed', organization: organization.id }) }))
      const teams = async (query: string) => {
        const response = await gw.fetch(`/api/gateway/v1/teams/?${query}`, { headers: adminAuth })
        const body = await json(response)
        return response.status === 200 ? body.results.map((listed: { id: number }) => listed.id) : [response.status, Object.keys(body.errors ?? {})]
      }
      // The collection's gateway_api lookup sends Python's None as written.
      for (const none of ['None', 'null', 'NULL']) assert.deepEqual(await teams(`organization=${none}`), [], none)
      assert.deepEqual(await teams(`not__organization=None&name=Listed`), [team.id])
      assert.deepEqual(await teams(`organization__in=None,${organization.id}`), [team.id])
      // As Django's in lookup, none among the values matches nothing, and so its negation keeps every other row.
      assert.deepEqual(await teams(`not__organization__in=None,${organization.id + 1000}&name=Listed`), [team.id])
      assert.deepEqual(await teams(`not__organization__in=None,${organization.id}&name=Listed`), [])
      assert.deepEqual(await teams('organization__in=None'), [])
      assert.deepEqual(await teams('not__organization__in=None&name=Listed'), [team.id])
      assert.deepEqual(await teams('organization__gt=None'), [400, ['organization__gt']])
      assert.deepEqual(await teams('id=None'), [400, ['id']], 'an object\'s own id is never none')
    })

    it('ignores the parameters the platform reserves and does not use here (limit, validate, host_filter)', async () => {
      assert.deepEqual((await names('limit=1&validate=1&host_filter=x&username=bob')), ['bob'])
    })

    it('combines or__ and not__ as the platform does', async () => {
      const alfred = (await json(await gw.fetch('/api/gateway/v1/users/?username=alfred', { headers: adminAuth }))).results[0]
      assert.deepEqual(await names(`or__id=${alfred.id}&or__username=bob`), ['alfred', 'bob'])
      assert.deepEqual(await names(`or__id=${alfred.id}&or__username=${alfred.id}`), ['alfred'])
      assert.deepEqual(await names('not__username__istartswith=a&is_active=true'), ['bob'])
      assert.deepEqual(await names('email__icontains=example&or__username=bob&or__username=Alice'), ['Alice', 'bob'])
    })

    it('keeps the rows where the field is null under not__, as Django\'s exclude() keeps them, on every list', async () => {
      const listed = async (path: string) => {
        const response = await gw.fetch(`/api/gateway/v1/${path}${path.includes('?') ? '&' : '?'}page_size=200`, { headers: adminAuth })
        const body = await json(response)
        assert.equal(response.status, 200, `${path}: ${JSON.stringify(body)}`)
        assert.equal(body.count, body.results.length, path)
        return body.results as Record<string, any>[]
      }
      const ids = (rows: Record<string, any>[]) => rows.map((row) => row.id)
      /** What not__<query> must list: every row the query itself does not (those null in the field among them). */
      const negated = async (path: string, query: string) => {
        const matching = new Set(ids(await listed(`${path}?${query}`)))
        return ids(await listed(path)).filter((id) => !matching.has(id))
      }
      const same = async (path: string, query: string) => assert.deepEqual(ids(await listed(`${path}?not__${query}`)), await negated(path, query), `${path}?not__${query}`)

      // A platform-wide role definition is on no content type.
      const roles = await listed('role_definitions/')
      assert.ok(roles.some((role) => role.content_type === null) && roles.some((role) => role.content_type === 'shared.team'))
      for (const query of ['content_type=shared.team', 'content_type__in=shared.team,shared.organization', 'content_type__model=team', 'content_type__icontains=team']) {
        await same('role_definitions/', query)
        assert.ok((await listed(`role_definitions/?not__${query}`)).some((role) => role.content_type === null), query)
      }

      // A platform-wide assignment is on no object.
      const organization = await json(await gw.fetch('/api/gateway/v1/organizations/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Excluded' }) }))
      const bob = (await json(await gw.fetch('/api/gateway/v1/users/?username=bob', { headers: adminAuth }))).results[0]
      const roleNamed = (name: string) => roles.find((role) => role.name === name)!.id
      for (const [role, objectId] of [['Platform Auditor', undefined], ['Organization Member', organization.id]] as const) {
        const given = await gw.fetch('/api/gateway/v1/role_user_assignments/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ role_definition: roleNamed(role), user: bob.id, object_id: objectId }) })
        assert.equal(given.status, 201, role)
      }
      for (const query of [`object_id=${organization.id}`, `object_id__in=${organization.id}`, 'object_id__startswith=1', 'content_type=shared.organization']) {
        await same('role_user_assignments/', query)
        assert.ok((await listed(`role_user_assignments/?not__${query}`)).some((assignment) => assignment.object_id === null), query)
      }

      // Accounts that never logged in have no last_login.
      await same('users/', `last_login__lt=${encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString())}`)
      assert.ok((await listed('users/?not__last_login__lt=2999-01-01T00:00:00Z')).some((user) => user.last_login === null))

      // The activity stream: a failed login has no actor, a change no code, realm or address given by it.
      await gw.fetch('/api/gateway/v1/me/', { headers: { authorization: `Basic ${Buffer.from('bob:not-the-password').toString('base64')}` } })
      await gw.app.audit.flush()
      const entries = await listed('activitystream/')
      assert.ok(entries.some((entry) => entry.code === null) && entries.some((entry) => entry.code === 'invalid_credentials'), JSON.stringify(entries.map((entry) => entry.code)))
      assert.ok(entries.some((entry) => entry.created_by === null) && entries.some((entry) => entry.created_by !== null))
      const admin = entries.find((entry) => entry.created_by !== null)!.created_by
      for (const query of ['code=invalid_credentials', 'code__in=invalid_credentials,account_locked', 'code__icontains=invalid', `created_by=${admin}`, 'created_by__username=admin', 'realm=master', 'object_id__startswith=1', 'changes__icontains=bob']) {
        await same('activitystream/', query)
      }
      assert.ok((await listed('activitystream/?not__code=invalid_credentials')).some((entry) => entry.code === null))
      assert.ok((await listed(`activitystream/?not__created_by=${admin}`)).some((entry) => entry.created_by === null))
      // Asking about null itself is as before.
      assert.ok((await listed('activitystream/?not__code__isnull=true')).every((entry) => entry.code !== null))
    })

    it('searches the text fields and orders by any field, descending with -', async () => {
      assert.deepEqual(await names('search=example.org'), ['alfred'])
      assert.deepEqual(await names('search=al example.com'), ['Alice'])
      // As DRF splits a search: a quoted phrase whole, without its quotes; only the last search given counts.
      assert.deepEqual(await names(`search=${encodeURIComponent('"example.org"')}`), ['alfred'])
      assert.deepEqual(await names(`search=${encodeURIComponent(`'al' example.com`)}`), ['Alice'])
      assert.deepEqual(await names(`search=${encodeURIComponent('"O\'Brien"')}`), ['obrien'])
      assert.deepEqual(await names(`search=${encodeURIComponent('"alice example"')}`), [])
      assert.deepEqual(await names('search=nobody&search=example.org'), ['alfred'])
      assert.deepEqual(await names('order_by=-username&username__in=Alice,bob,alfred'), ['bob', 'alfred', 'Alice'])
      assert.deepEqual(await names('order_by=is_superuser,-id&username__in=Alice,bob,alfred'), ['alfred', 'Alice', 'bob'])
    })

    it('compares a whole number no id holds as Django does: equal to none, above or below every id', async () => {
      const alfred = (await json(await gw.fetch('/api/gateway/v1/users/?username=alfred', { headers: adminAuth }))).results[0]
      assert.deepEqual(await names('id=2147483648'), [])
      assert.deepEqual(await names(`or__id=98765432101&or__username=alfred`), ['alfred'], 'the collection looks a numeric name up as an id too')
      assert.deepEqual(await names('not__id=99999999999&username__in=Alice,bob'), ['Alice', 'bob'])
      assert.deepEqual(await names('id__in=99999999999,-99999999999'), [])
      assert.deepEqual(await names(`id__in=${alfred.id},99999999999`), ['alfred'])
      assert.deepEqual(await names('id__gt=-999999999999999&username=bob'), ['bob'])
      assert.deepEqual(await names('id__lt=-999999999999999'), [])
      assert.deepEqual(await names('id__gte=99999999999999999999'), [])
      assert.deepEqual(await names('id__lte=99999999999&username=bob'), ['bob'])
    })

    it('refuses an unknown field, a wrong value or a text lookup on a number, naming the parameter', async () => {
      await refused('usrname=Alice', 'usrname')
      await refused('user__username=Alice', 'user__username')
      await refused('id=abc', 'id')
      await refused('id__in=1,x', 'id__in')
      await refused('id=1.5', 'id')
      await refused('id__in=1,99999999999x', 'id__in')
      await refused('id__icontains=1', 'id__icontains')
      await refused('is_active=maybe', 'is_active')
      await refused('created__gt=yesterday', 'created__gt')
      await refused('order_by=password_hash', 'order_by')
      await refused('username__in=', 'username__in')
      // Each search term is a condition on every searched field: SQLite's expression depth ends at 1000.
      await refused(`search=${Array.from({ length: 1000 }, (_, i) => `al${i}`).join('+')}`, 'search')
      // The same term many times is the term once.
      assert.deepEqual(await names(`search=${'al+'.repeat(1000)}`), ['Alice', 'alfred'])
      assert.deepEqual(await names(`search=${'al+'.repeat(32)}`), ['Alice', 'alfred'])
      // SQLite takes at most 2000 ORDER BY terms.
      await refused(`order_by=${'id,'.repeat(2100)}`, 'order_by')
      assert.deepEqual(await names(`search=al&order_by=${'-id,'.repeat(32)}`), ['alfred', 'Alice'])
    })

    it('bounds the work one query asks of the database: filters, search terms by the fields each searches, order fields', async () => {
      const terms = (n: number) => Array.from({ length: n }, (_, i) => `term${i}`).join('+')
      await refused(`search=${terms(20)}`, 'non_field_errors')
      await refused(`${Array.from({ length: 30 }, (_, i) => `not__email__contains=x${i}`).join('&')}&search=${terms(5)}`, 'non_field_errors')
      await refused(`email__icontains=${'x'.repeat(257)}`, 'email__icontains')
      await refused(`search=${'x'.repeat(257)}`, 'search')
      // Within it, as any list's own use: a few filters, terms and orders, and a long exact value.
      assert.deepEqual(await names(`search=al+ALFRED&not__email__contains=${'x'.repeat(256)}&order_by=username,-id,username`), ['alfred'])
      assert.deepEqual(await names(`username__iexact=${'x'.repeat(300)}`), [])
    })

    it('filters the tokens list the same way, so a client deletes exactly the token it found', async () => {
      const create = () => gw.fetch('/api/gateway/v1/tokens/', { method: 'POST', headers: { ...adminAuth, 'content-type': 'application/json' }, body: '{"description": "one"}' })
      const first = await json(await create())
      await create()
      const found = await json(await gw.fetch(`/api/gateway/v1/tokens/?id=${first.id}`, { headers: adminAuth }))
      assert.equal(found.count, 1)
      assert.equal(found.results[0].id, first.id)
      const unknown = await gw.fetch(`/api/gateway/v1/tokens/?token_id=${first.id}`, { headers: adminAuth })
      assert.equal(unknown.status, 400)
    })
  })
}
