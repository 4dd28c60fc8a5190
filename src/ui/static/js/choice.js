import { h, messageOf, replace } from './dom.js'

/**
 * @typedef {{value: string, text: string}} Choice
 * @typedef {{choices: Choice[], more: number}} Found `more`: how many more match than are listed
 */

/** How long typing pauses before the API is asked: one request for a word typed, not one per letter. */
const TYPING_PAUSE_MS = 200
let choiceCounter = 0

/**
 * A form field whose value is chosen from what the API finds as the person types, however many there are (a list
 * read once would hold the first page only): the WAI-ARIA combobox pattern, a text box with a list box of what
 * matches. Arrow keys move through the list, Enter or a click chooses, Escape closes it; when nothing matches, or
 * the search fails, a message under the box says so. The value chosen is submitted as `name`; text typed without
 * choosing leaves it empty.
 * @param {{label: string, name: string, help?: string, placeholder?: string, nothing: (text: string) => string,
 *   search: (text: string, signal: AbortSignal) => Promise<Found>}} spec
 */
export function searchChoice(spec) {
  const id = `c-${spec.name}-${++choiceCounter}`
  const listId = `${id}-list`
  const statusId = `${id}-status`
  const helpId = spec.help ? `${id}-help` : undefined
  const input = /** @type {HTMLInputElement} */ (h('input', {
    id,
    type: 'text',
    role: 'combobox',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    'aria-describedby': [helpId, statusId].filter(Boolean).join(' '),
    autocomplete: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    placeholder: spec.placeholder,
  }))
  // What the form submits.
  const chosen = /** @type {HTMLInputElement} */ (h('input', { type: 'hidden', name: spec.name }))
  const list = h('ul', { id: listId, role: 'listbox', class: 'choice-list', 'aria-label': spec.label, hidden: true })
  const status = h('p', { id: statusId, class: 'choice-status help', role: 'status' })
  /** @type {Choice[]} */
  let shown = []
  let active = -1
  /** The text of the value chosen, to tell a choice from text typed since. */
  let chosenText = ''
  /** @type {AbortController | undefined} */
  let searching
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let pause
  /** Whether the form's reset is watched: a reset leaves a hidden input's value as it is. */
  let resetWatched = false

  const optionId = (/** @type {number} */ index) => `${id}-option-${index}`

  function close() {
    list.hidden = true
    input.setAttribute('aria-expanded', 'false')
    input.removeAttribute('aria-activedescendant')
    active = -1
  }

  function highlight(/** @type {number} */ index) {
    active = index
    for (const [i, option] of [...list.children].entries()) option.setAttribute('aria-selected', String(i === index))
    if (index < 0) return input.removeAttribute('aria-activedescendant')
    input.setAttribute('aria-activedescendant', optionId(index))
    list.children[index]?.scrollIntoView({ block: 'nearest' })
  }

  function choose(/** @type {Choice} */ choice) {
    input.value = choice.text
    chosen.value = choice.value
    chosenText = choice.text
    replace(status)
    close()
    if (resetWatched || !input.form) return
    resetWatched = true
    input.form.addEventListener('reset', () => {
      chosen.value = ''
      chosenText = ''
    })
  }

  async function find() {
    searching?.abort()
    const controller = searching = new AbortController()
    const text = input.value.trim()
    let found
    try {
      found = await spec.search(text, controller.signal)
    } catch (error) {
      if (controller.signal.aborted) return
      close()
      replace(status, `Could not search: ${messageOf(error)}`)
      return
    }
    if (controller.signal.aborted || document.activeElement !== input) return
    shown = found.choices
    replace(list, shown.map((choice, index) => h('li', {
      id: optionId(index),
      role: 'option',
      'aria-selected': 'false',
      // Chosen on the press, before the box loses the focus to the list.
      onmousedown: (/** @type {MouseEvent} */ event) => event.preventDefault(),
      onclick: () => choose(choice),
    }, choice.text)))
    if (!shown.length) {
      close()
      replace(status, spec.nothing(text))
      return
    }
    list.hidden = false
    input.setAttribute('aria-expanded', 'true')
    highlight(-1)
    replace(status, found.more ? `${shown.length} shown of ${shown.length + found.more}: type more of the name to find the others.` : '')
  }

  function findSoon() {
    clearTimeout(pause)
    pause = setTimeout(find, TYPING_PAUSE_MS)
  }

  input.addEventListener('input', () => {
    if (input.value !== chosenText) chosen.value = ''
    findSoon()
  })
  input.addEventListener('focus', () => {
    if (!chosen.value) findSoon()
  })
  input.addEventListener('blur', () => {
    clearTimeout(pause)
    searching?.abort()
    close()
  })
  input.addEventListener('keydown', (event) => {
    const open = !list.hidden
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault()
      if (!open) return void find()
      const step = event.key === 'ArrowDown' ? 1 : -1
      highlight((active + step + shown.length) % shown.length)
    } else if (event.key === 'Enter' && open && active >= 0) {
      // Chooses rather than submits the form.
      event.preventDefault()
      choose(/** @type {Choice} */ (shown[active]))
    } else if (event.key === 'Escape' && open) {
      // Closes the list only, not a dialog or menu around it.
      event.preventDefault()
      event.stopPropagation()
      close()
    }
  })

  const help = spec.help ? h('p', { class: 'help', id: helpId }, spec.help) : null
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true })
  return h('div', { class: 'field choice', dataset: { field: spec.name } },
    h('label', { for: id }, spec.label), input, chosen, list, status, error, help)
}

/**
 * A page of an API list as choices: `count` says how many more there are than the page holds.
 * @param {{count: number, results: any[]}} page
 * @param {(item: any) => Choice} toChoice
 * @returns {Found}
 */
export function foundIn(page, toChoice) {
  return { choices: page.results.map(toChoice), more: Math.max(0, page.count - page.results.length) }
}
