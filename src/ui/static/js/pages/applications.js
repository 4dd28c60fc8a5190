import { api } from '../api.js'
import { clearErrors, confirmAction, field, h, replace, showErrors, time, whileBusy } from '../dom.js'
import { changeThenReload, pagedTable } from '../table.js'

/**
 * OAuth2 applications (superusers): create one (its client id, and a confidential one's secret, shown once), see
 * them, delete one. Programs get tokens for an application at /o/token/.
 * @param {import('../app.js').PageContext} _context
 */
export async function applicationsPage(_context) {
  /** @type {import('../table.js').Column[]} */
  const columns = [
    { label: 'Name', cell: (a) => a.name },
    { label: 'Client ID', cell: (a) => h('code', null, a.client_id) },
    { label: 'Client type', cell: (a) => a.client_type === 'public' ? 'Public' : 'Confidential' },
    { label: 'Grant', cell: (a) => a.authorization_grant_type === 'password' ? 'Password' : 'Authorization code' },
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
  const table = pagedTable({ caption: 'Applications', columns, load: (page) => api('applications/', { query: { page } }), empty: 'There are no applications.' })
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
    field({ label: 'Grant', name: 'authorization_grant_type', type: 'select', value: 'password', options: [['password', 'Password'], ['authorization-code', 'Authorization code']] }),
    field({ label: 'Redirect URIs', name: 'redirect_uris', placeholder: 'https://app.example.com/callback', help: 'Space-separated; needed for the authorization code grant.' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create application'))))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const data = new FormData(form)
    const body = {
      name: String(data.get('name') || '').trim(),
      client_type: data.get('client_type'),
      authorization_grant_type: data.get('authorization_grant_type'),
      redirect_uris: String(data.get('redirect_uris') || '').trim(),
    }
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      const application = await whileBusy(button, () => api('applications/', { method: 'POST', body }))
      form.reset()
      showCredentials(created, application)
      await table.reload(false)
    } catch (error) {
      showErrors(form, error)
    }
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
 * The new application's client id, and a confidential one's secret, shown this once.
 * @param {HTMLElement} slot
 * @param {any} application
 */
function showCredentials(slot, application) {
  replace(slot, h('div', { class: 'new-token', role: 'region', 'aria-labelledby': 'new-application-heading' },
    h('h3', { id: 'new-application-heading' }, `Application "${application.name}"`),
    h('p', null, 'Client ID: ', h('code', { id: 'new-client-id' }, application.client_id)),
    application.client_secret
      ? h('p', null, h('strong', null, 'Copy the secret now: it will not be shown again. '), h('code', { id: 'new-client-secret' }, application.client_secret))
      : null,
    h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => replace(slot) }, 'Done'))))
}
