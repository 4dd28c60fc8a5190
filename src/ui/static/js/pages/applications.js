import { api, published } from '../api.js'
import { confirmAction, doneButton, field, h, onSubmit, replace, time, toast } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'
import { fact } from './account.js'

const PKCE_HELP = 'Its users\' logins through the authorization code grant must send a PKCE challenge (S256), so that a '
  + 'code intercepted on its way back cannot be redeemed. Turn it off only for a client that cannot send one.'

/** How long the old secret may go on working after a rotation, in seconds: the API takes up to 30 days. */
const GRACE_OPTIONS = /** @type {[string, string][]} */ ([
  ['0', 'Not at all: it stops now'],
  ['900', '15 minutes'],
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
])

/**
 * OAuth2 applications (superusers): create one (its client id, and a confidential one's secret, shown once), see
 * them, open one to change it, delete one. Programs get tokens for an application at /o/token/.
 * @param {import('../app.js').PageContext} _context
 */
export async function applicationsPage(_context) {
  /** @type {import('../table.js').Column[]} */
  const columns = [
    { label: 'Name', cell: (a) => h('a', { href: published(`/ui/admin/applications/${a.id}`) }, a.name) },
    { label: 'Client ID', cell: (a) => h('code', null, a.client_id) },
    { label: 'Client type', cell: (a) => clientTypeName(a) },
    { label: 'Grant', cell: (a) => grantName(a) },
    { label: 'PKCE', cell: (a) => a.pkce_required ? 'Required' : 'Optional' },
    { label: 'Created', cell: (a) => time(a.created) },
    {
      label: 'Actions',
      class: 'actions-cell',
      cell: (a) => h('button', {
        type: 'button',
        class: 'danger small',
        'aria-label': `Delete application ${a.name}`,
        onclick: (/** @type {Event} */ e) => remove(/** @type {HTMLButtonElement} */ (e.currentTarget), a),
      }, 'Delete'),
    },
  ]
  // Newest first, so that an application just made heads the first page however many there are (the API's own order,
  // the platform's, is oldest first).
  const table = pagedTable({ caption: 'Applications', columns, load: (page) => api('applications/', { query: { page, order_by: '-created,-id' } }), empty: 'There are no applications.', pageParam: 'page' })
  await table.reload()

  /**
   * @param {HTMLButtonElement} button
   * @param {any} application
   */
  async function remove(button, application) {
    if (!(await confirmAction(`Delete "${application.name}"? Programs using it get no new tokens from now on.`, 'Delete'))) return
    await changeThenReload(button, async () => {
      await api(`applications/${application.id}/`, { method: 'DELETE' })
      return 'Application deleted.'
    }, table)
  }

  const created = h('div', { class: 'created-slot' })
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid' },
    field({ label: 'Name', name: 'name', placeholder: 'e.g. AWX CLI' }),
    field({ label: 'Client type', name: 'client_type', type: 'select', value: 'public', options: [['public', 'Public: no secret (command-line tools)'], ['confidential', 'Confidential: with a secret (servers)']] }),
    editableFields(null),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create application'))))
  onSubmit(form, async (data) => {
    const body = { name: String(data.get('name') || '').trim(), client_type: data.get('client_type'), ...editedValues(data) }
    const application = await api('applications/', { method: 'POST', body })
    form.reset()
    showCredentials(created, application, form)
    await table.reload(false)
  })

  return h('div', { class: 'stack' },
    h('section', { class: 'panel', 'aria-labelledby': 'create-application-heading' },
      h('h2', { id: 'create-application-heading' }, 'Create an application'),
      h('p', { class: 'muted' }, 'An application gets tokens for its users at ', h('code', null, '/o/token/'), ', as the platform\'s clients expect.'),
      form,
      created),
    h('section', { 'aria-labelledby': 'applications-heading' },
      h('h2', { id: 'applications-heading' }, 'Applications'),
      table.element))
}

/**
 * One application: change it; a confidential one's secret replaced, the new one shown once.
 * @param {import('../app.js').PageContext} context
 */
export async function applicationPage(context) {
  const application = await api(`applications/${context.params[0]}/`)
  context.setTitle(`Application ${application.name}`)
  const facts = h('dl', { class: 'facts' },
    fact('Client ID', h('code', null, application.client_id)),
    fact('Client type', clientTypeName(application)),
    fact('Created', time(application.created)))

  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-label': 'Application' },
    field({ label: 'Name', name: 'name', value: application.name }),
    field({ label: 'Description', name: 'description', value: application.description }),
    editableFields(application),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save'))))
  onSubmit(form, async (data) => {
    const body = { name: String(data.get('name') || '').trim(), description: String(data.get('description') || '').trim(), ...editedValues(data) }
    const saved = await api(`applications/${application.id}/`, { method: 'PATCH', body })
    context.setTitle(`Application ${saved.name}`)
    toast('Saved.')
  })

  return h('div', { class: 'stack' },
    facts,
    form,
    application.client_type === 'confidential'
      ? rotateSecretSection(application)
      : h('p', { class: 'muted' }, 'A public application has no secret: its users\' programs name it by its client ID alone.'))
}

/**
 * The fields an application's create and its page share.
 * @param {any} application null for a new one
 */
function editableFields(application) {
  return [
    field({ label: 'Grant', name: 'authorization_grant_type', type: 'select', value: application?.authorization_grant_type ?? 'password', options: [['password', 'Password'], ['authorization-code', 'Authorization code']] }),
    field({ label: 'Redirect URIs', name: 'redirect_uris', value: application?.redirect_uris, placeholder: 'https://app.example.com/callback', help: 'Space-separated; needed for the authorization code grant.' }),
    field({ label: 'Require PKCE', name: 'pkce_required', type: 'checkbox', value: application?.pkce_required ?? true, help: PKCE_HELP }),
  ]
}

/** @param {FormData} data the values of `editableFields` */
function editedValues(data) {
  return {
    authorization_grant_type: data.get('authorization_grant_type'),
    redirect_uris: String(data.get('redirect_uris') || '').trim(),
    pkce_required: data.has('pkce_required'),
  }
}

/**
 * A confidential application's secret replaced (`POST applications/{id}/client_secret/`), the old one working for the
 * grace period asked for, so that its clients can take the new one without being refused meanwhile.
 * @param {any} application
 */
function rotateSecretSection(application) {
  const result = h('div', { class: 'created-slot' })
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid' },
    field({ label: 'Keep the old secret working for', name: 'grace_seconds', type: 'select', value: '3600', options: GRACE_OPTIONS, help: 'Time to give the application\'s clients the new secret. A secret that leaked should stop now.' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Rotate secret'))))
  onSubmit(form, async (data) => {
    const grace = Number(data.get('grace_seconds'))
    const question = grace
      ? `Give "${application.name}" a new secret? The old one stops working in ${GRACE_OPTIONS.find(([value]) => Number(value) === grace)?.[1]}.`
      : `Give "${application.name}" a new secret? The old one stops working now: its clients are refused until they have the new one.`
    if (!(await confirmAction(question, 'Rotate secret'))) return
    showCredentials(result, await api(`applications/${application.id}/client_secret/`, { method: 'POST', body: { grace_seconds: grace } }), form)
  })
  return h('section', { class: 'panel', 'aria-labelledby': 'rotate-secret-heading' },
    h('h2', { id: 'rotate-secret-heading' }, 'Secret'),
    h('p', { class: 'muted' }, 'The secret was shown once, when the application was made. A new one replaces it, for a secret that leaked or left with someone who held it.'),
    form,
    result)
}

/**
 * The new application's client id, and a confidential one's secret, shown this once; after a rotation, until when
 * the old secret works. The keyboard focus moves to it, so that a screen reader reads it out.
 * @param {HTMLElement} slot
 * @param {any} application
 * @param {HTMLFormElement} form the form that made it
 */
function showCredentials(slot, application, form) {
  const rotated = 'previous_secret_expires' in application
  const region = h('div', { class: 'new-token', role: 'region', tabindex: '-1', 'aria-labelledby': 'new-application-heading' },
    h('h3', { id: 'new-application-heading' }, rotated ? `New secret of "${application.name}"` : `Application "${application.name}"`),
    h('p', null, 'Client ID: ', h('code', { id: 'new-client-id' }, application.client_id)),
    application.client_secret
      ? h('p', null, h('strong', null, 'Copy the secret now: it will not be shown again. '), h('code', { id: 'new-client-secret' }, application.client_secret))
      : null,
    rotated
      ? h('p', { id: 'previous-secret' }, application.previous_secret_expires
        ? ['The old secret works until ', time(application.previous_secret_expires), '.']
        : 'The old secret no longer works.')
      : null,
    h('div', { class: 'actions' }, doneButton(slot, form)))
  replace(slot, region)
  region.focus()
}

/** @param {any} application */
function clientTypeName(application) {
  return application.client_type === 'public' ? 'Public' : 'Confidential'
}

/** @param {any} application */
function grantName(application) {
  return application.authorization_grant_type === 'password' ? 'Password' : 'Authorization code'
}
