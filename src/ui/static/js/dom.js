// Small DOM helpers. Text from the server only ever becomes text nodes or attribute values:
// nothing here parses markup, so data cannot turn into script.

/**
 * @typedef {Node | string | number | null | undefined | false | Child[]} Child
 */

/**
 * Creates an element. Props: `class`, `on<event>` handlers, `dataset`, and any attribute; `true` sets a boolean
 * attribute, `false`/`null`/`undefined` leave it out. Strings among the children become text nodes.
 * @param {string} tag
 * @param {Record<string, any> | null} [props]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2).toLowerCase(), value)
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value)
    } else if (name === 'value' && 'value' in element) {
      /** @type {HTMLInputElement} */ (element).value = String(value)
    } else if (name === 'checked' || name === 'selected') {
      /** @type {any} */ (element)[name] = Boolean(value)
    } else {
      element.setAttribute(name === 'className' ? 'class' : name, value === true ? '' : String(value))
    }
  }
  append(element, children)
  return element
}

/**
 * @param {Node} parent
 * @param {Child[]} children
 */
function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    if (Array.isArray(child)) append(parent, child)
    else parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/**
 * Replaces an element's content.
 * @param {Element} element
 * @param {...Child} children
 */
export function replace(element, ...children) {
  element.replaceChildren()
  append(element, children)
}

let fieldCounter = 0

/**
 * A labelled form control with room for a help text and for the server's messages about it.
 * @param {{label: string, name: string, type?: string, value?: unknown, help?: string, options?: [string, string][],
 *   required?: boolean, autocomplete?: string, placeholder?: string, readonly?: boolean, disabled?: boolean, min?: number, inputmode?: string}} spec
 */
export function field(spec) {
  const id = `f-${spec.name}-${++fieldCounter}`
  const helpId = spec.help ? `${id}-help` : undefined
  const type = spec.type || 'text'
  const common = { id, name: spec.name, required: spec.required, 'aria-describedby': helpId }
  let control
  if (type === 'select') {
    const chosen = String(spec.value ?? '')
    // A value none of the choices names (a filter typed into the address) is shown as it is, not as the first choice,
    // which would say the list is not filtered when it is.
    const options = spec.options || []
    const choices = chosen && !options.some(([value]) => value === chosen) ? [...options, [chosen, chosen]] : options
    control = h('select', common, choices.map(([value, text]) => h('option', { value, selected: chosen === value }, text)))
  } else if (type === 'checkbox') {
    control = h('input', { ...common, type, checked: Boolean(spec.value), disabled: spec.disabled })
  } else {
    control = h('input', {
      ...common,
      type,
      value: spec.value ?? '',
      autocomplete: spec.autocomplete,
      placeholder: spec.placeholder,
      readonly: spec.readonly,
      inputmode: spec.inputmode,
      autocapitalize: type === 'text' ? 'none' : undefined,
      spellcheck: type === 'text' ? 'false' : undefined,
    })
  }
  const help = spec.help ? h('p', { class: 'help', id: helpId }, spec.help) : null
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true })
  if (type === 'checkbox') {
    return h('div', { class: 'field checkbox', dataset: { field: spec.name } }, h('label', { for: id }, control, ' ', spec.label), error, help)
  }
  return h('div', { class: 'field', dataset: { field: spec.name } }, h('label', { for: id }, spec.label), control, error, help)
}

/**
 * Removes the messages a previous attempt left on a form.
 * @param {HTMLFormElement} form
 */
export function clearErrors(form) {
  for (const error of form.querySelectorAll('.field-error')) {
    error.textContent = ''
    error.setAttribute('hidden', '')
  }
  for (const control of form.querySelectorAll('[aria-invalid]')) {
    control.removeAttribute('aria-invalid')
    const describedBy = (control.getAttribute('aria-describedby') || '').split(' ').filter((id) => !id.endsWith('-error'))
    if (describedBy.length) control.setAttribute('aria-describedby', describedBy.join(' '))
    else control.removeAttribute('aria-describedby')
  }
  form.querySelector('.form-error')?.remove()
}

/**
 * Shows what the server said about a form: each field's messages next to that field, the rest above the buttons.
 * @param {HTMLFormElement} form
 * @param {unknown} error an ApiError, or anything thrown
 * @param {Record<string, string>} [aliases] server field name -> form field name, where they differ
 */
export function showErrors(form, error, aliases = {}) {
  clearErrors(form)
  const fields = /** @type {{fields?: Record<string, string[]>}} */ (error).fields || {}
  /** @type {string[]} */
  const general = []
  let first = /** @type {HTMLElement | null} */ (null)
  for (const [name, messages] of Object.entries(fields)) {
    const wrapper = form.querySelector(`[data-field="${CSS.escape(aliases[name] || name)}"]`)
    const slot = wrapper?.querySelector('.field-error')
    const control = wrapper?.querySelector('input, select, textarea')
    if (!slot || !control) {
      general.push(...messages.map((message) => (name === 'non_field_errors' ? message : `${name}: ${message}`)))
      continue
    }
    slot.textContent = messages.join(' ')
    slot.removeAttribute('hidden')
    control.setAttribute('aria-invalid', 'true')
    control.setAttribute('aria-describedby', [control.getAttribute('aria-describedby'), slot.id].filter(Boolean).join(' '))
    first ??= /** @type {HTMLElement} */ (control)
  }
  if (!Object.keys(fields).length || general.length) {
    const text = general.length ? general.join(' ') : messageOf(error)
    const actions = form.querySelector('.actions')
    const alert = h('p', { class: 'form-error', role: 'alert' }, text)
    if (actions) actions.before(alert)
    else form.append(alert)
  }
  first?.focus()
}

/** @param {unknown} error */
export function messageOf(error) {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Runs an action from a button: disabled while it runs, so a double click sends once.
 * @template T
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<T>} action
 * @returns {Promise<T>}
 */
export async function whileBusy(button, action) {
  if (button) button.disabled = true
  try {
    return await action()
  } finally {
    if (button) button.disabled = false
  }
}

/**
 * Runs `action` with the form's data when it is submitted: the submit button is busy meanwhile, and whatever the
 * server says is wrong is shown next to its fields.
 * @param {HTMLFormElement} form
 * @param {(data: FormData) => Promise<unknown>} action
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    clearErrors(form)
    const button = /** @type {HTMLButtonElement | null} */ (form.querySelector('button[type=submit]'))
    try {
      await whileBusy(button, () => action(new FormData(form)))
    } catch (error) {
      showErrors(form, error)
    }
  })
}

/**
 * The Done button of something shown once (a new token, a new secret): it takes it away, and the keyboard focus goes
 * back to the first field of the form that made it, rather than falling to the top of the page with the button.
 * @param {HTMLElement} slot
 * @param {HTMLFormElement} form
 */
export function doneButton(slot, form) {
  const done = () => {
    replace(slot)
    const first = /** @type {HTMLElement | null} */ (form.querySelector('input:not([type=hidden]), select, textarea'))
    first?.focus()
  }
  return h('button', { type: 'button', class: 'secondary', onclick: done }, 'Done')
}

let confirmCounter = 0

/**
 * Asks before something that cannot be undone, in a modal dialog. Resolves to whether the person agreed.
 * @param {string} message
 * @param {string} confirmLabel
 * @returns {Promise<boolean>}
 */
export function confirmAction(message, confirmLabel) {
  return new Promise((resolve) => {
    // The question describes the dialog, so that a screen reader reads it out with the dialog's name when the focus
    // moves to its first button, rather than only "Revoke, dialog; Cancel, button".
    const questionId = `confirm-question-${++confirmCounter}`
    const dialog = /** @type {HTMLDialogElement} */ (h('dialog', { class: 'confirm', 'aria-label': confirmLabel, 'aria-describedby': questionId },
      h('form', { method: 'dialog' },
        h('p', { id: questionId }, message),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'secondary' }, 'Cancel'),
          h('button', { type: 'submit', value: 'confirm', class: 'danger' }, confirmLabel)))))
    dialog.addEventListener('close', () => {
      dialog.remove()
      resolve(dialog.returnValue === 'confirm')
    })
    document.body.append(dialog)
    dialog.showModal()
  })
}

/**
 * A short message at the bottom of the page ("Token revoked."), gone after a few seconds. A refusal or a failure stays
 * until it is dismissed or the page is left: it may take longer to read than a few seconds.
 * @param {string} text
 * @param {'ok' | 'error'} [kind]
 */
export function toast(text, kind = 'ok') {
  // The shell's live region, there from the start: screen readers read out what changes in a live region, not one
  // added to the page with its text.
  const region = /** @type {HTMLElement} */ (document.getElementById('toasts'))
  const item = h('p', { class: `toast ${kind}` }, text)
  if (kind === 'error') {
    item.append(' ', h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss the message', onclick: () => item.remove() }, 'Dismiss'))
  } else {
    setTimeout(() => item.remove(), 4000)
  }
  region.append(item)
}

/** Removes the messages that stay until dismissed: they were about the page being left. */
export function dismissErrorToasts() {
  for (const item of document.querySelectorAll('#toasts .toast.error')) item.remove()
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

/**
 * A date for people: "12 Mar 2026, 14:05"; `empty` when there is none.
 * @param {string | null | undefined} iso
 * @param {string} [empty]
 */
export function formatDate(iso, empty = '—') {
  if (!iso) return empty
  const date = new Date(iso)
  return Number.isNaN(date.getTime()) ? empty : dateFormat.format(date)
}

/**
 * A <time> element showing a date, with the exact time as its machine-readable value.
 * @param {string | null | undefined} iso
 * @param {string} [empty]
 */
export function time(iso, empty = '—') {
  return iso ? h('time', { datetime: iso, title: iso }, formatDate(iso, empty)) : empty
}

/**
 * Seconds as people say them: "45 s", "15 min", "2 h 5 min", "365 days".
 * @param {number} seconds
 */
export function formatDuration(seconds) {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  if (seconds < 2 * 86400) {
    const minutes = Math.round(seconds / 60)
    return minutes % 60 ? `${Math.floor(minutes / 60)} h ${minutes % 60} min` : `${minutes / 60} h`
  }
  return `${Math.round(seconds / 86400)} days`
}
