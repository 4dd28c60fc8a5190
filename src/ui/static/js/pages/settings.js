import { api } from '../api.js'
import { clearErrors, field, formatDuration, h, showErrors, toast, whileBusy } from '../dom.js'

/**
 * How the settings the gateway knows are shown. A setting added on the server later and not listed here still
 * appears, under its API name, with a control chosen from its value's type.
 * @type {Record<string, {label: string, help: string, unit?: string}>}
 */
const KNOWN = {
  gateway_basic_auth_enabled: {
    label: 'Gateway basic auth enabled',
    help: 'Accept a username and password with every request (HTTP basic). When off, basic credentials are refused with 401.',
  },
  session_cookie_age: {
    label: 'Session cookie age',
    help: 'How long a login session lasts, in seconds (at least 60). Applies to sessions started or extended from now on.',
    unit: 'seconds',
  },
  sessions_per_user_limit: {
    label: 'Sessions per user limit',
    help: 'The most login sessions one user may have at once; a new login ends the oldest beyond it. 0: no limit.',
  },
  allow_external_users_to_create_oauth2_tokens: {
    label: 'Allow external users to create OAuth2 tokens',
    help: 'Let users from LDAP or single sign-on create personal tokens. Tokens they already have keep working either way.',
  },
  oauth2_access_token_expire_seconds: {
    label: 'OAuth2 token lifetime',
    help: 'The default and the longest lifetime of a personal token, in seconds.',
    unit: 'seconds',
  },
  login_failures_before_lockout: {
    label: 'Failed logins before lockout',
    help: 'Wrong passwords in a row for one username before its logins are refused for a while. 0: no lockout.',
  },
  login_lockout_seconds: {
    label: 'Lockout duration',
    help: 'How long a username stays locked after too many wrong passwords, in seconds.',
    unit: 'seconds',
  },
  login_failures_per_address: {
    label: 'Failed logins per address',
    help: 'Wrong passwords from one client address, for any usernames, within the window below before its logins are refused until the window ends. 0: no limit.',
  },
  login_address_window_seconds: {
    label: 'Address window',
    help: 'The time in which the failed logins of one address are counted, in seconds.',
    unit: 'seconds',
  },
  login_lockout_spares_clean_addresses: {
    label: 'Let clean addresses past a lockout',
    help: 'While a username is locked, still check passwords from addresses without a failed login in the last 12 hours, so that guessing someone\'s username cannot lock them out.',
  },
  local_password_min_length: {
    label: 'Minimum password length',
    help: 'Fewest characters a new password of a local account must have. 0: no minimum. Passwords already set keep working.',
  },
  local_password_refuse_common: {
    label: 'Refuse common passwords',
    help: 'Refuse a new local password that is one of about 49,000 commonly used ones, or the same as the username.',
  },
}

/** The platform's names in lower case that the API shows beside Gatehouse's (src/settings/platform-names.ts). */
const LOWER_CASE_PLATFORM_NAMES = new Set(['password_min_length'])

/**
 * The API also shows some settings under the automation platform's names (SESSION_COOKIE_AGE, OAUTH2_PROVIDER,
 * mostly written in capitals); the page shows each setting once, under Gatehouse's name.
 * @param {string} name
 */
function isPlatformName(name) {
  return /^[A-Z0-9_]+$/.test(name) || LOWER_CASE_PLATFORM_NAMES.has(name)
}

/**
 * Settings (superusers): the gateway's run-time settings. Only changed values are sent; when the server refuses
 * any of them it says why next to the field, and nothing is saved.
 * @param {import('../app.js').PageContext} _context
 */
export async function settingsPage(_context) {
  let current = await api('settings/all/')
  const form = /** @type {HTMLFormElement} */ (h('form', { novalidate: true, class: 'form-grid panel', 'aria-label': 'Gateway settings' },
    Object.entries(current).filter(([name]) => !isPlatformName(name)).map(([name, value]) => settingField(name, value)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save settings'))))

  form.addEventListener('input', (event) => {
    const target = /** @type {HTMLInputElement} */ (event.target)
    const hint = form.querySelector(`[data-hint="${CSS.escape(target.name)}"]`)
    if (hint) hint.textContent = durationHint(target.value)
  })

  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const changes = changedValues(form, current)
    if (!Object.keys(changes).length) return toast('Nothing changed.')
    const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type=submit]'))
    try {
      current = await whileBusy(button, () => api('settings/all/', { method: 'PATCH', body: changes }))
      toast('Settings saved.')
    } catch (error) {
      showErrors(form, error)
    }
  })
  return form
}

/**
 * @param {string} name
 * @param {unknown} value
 */
function settingField(name, value) {
  const known = KNOWN[name]
  const label = known?.label ?? name
  const help = known ? `${known.help} (${name})` : undefined
  if (typeof value === 'boolean') return field({ label, name, type: 'checkbox', value, help })
  if (typeof value === 'number') {
    const wrapper = field({ label: known?.unit ? `${label} (${known.unit})` : label, name, type: 'text', inputmode: 'numeric', value, help })
    if (known?.unit === 'seconds') wrapper.querySelector('.field-error')?.after(h('span', { class: 'hint', dataset: { hint: name } }, durationHint(String(value))))
    return wrapper
  }
  return field({ label, name, type: 'text', value: typeof value === 'string' ? value : JSON.stringify(value), help })
}

/** @param {string} text */
function durationHint(text) {
  return /^\d+$/.test(text.trim()) ? `= ${formatDuration(Number(text))}` : ''
}

/**
 * The form's values that differ from the saved ones, typed like the saved ones. Text that is not a number
 * goes to the server as typed, so the server's message, not a browser's, explains what is wrong.
 * @param {HTMLFormElement} form
 * @param {Record<string, unknown>} saved
 */
function changedValues(form, saved) {
  /** @type {Record<string, unknown>} */
  const changes = {}
  for (const [name, old] of Object.entries(saved)) {
    const control = /** @type {HTMLInputElement | null} */ (form.elements.namedItem(name))
    if (!control) continue
    let value
    if (typeof old === 'boolean') value = control.checked
    else if (typeof old === 'number') value = /^\s*-?\d+(\.\d+)?\s*$/.test(control.value) ? Number(control.value) : control.value
    else if (typeof old === 'string') value = control.value
    else continue
    if (value !== old) changes[name] = value
  }
  return changes
}
