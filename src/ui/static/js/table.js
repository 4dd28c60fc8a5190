import { h, messageOf, replace, toast, whileBusy } from './dom.js'

/**
 * @typedef {{label: string, cell: (row: any) => import('./dom.js').Child, class?: string}} Column
 * @typedef {{count: number, next: string | null, previous: string | null, results: any[]}} PageOfResults
 */

/**
 * A table over one of the API's paged lists (`{count, next, previous, results}`), with previous/next buttons.
 * On narrow screens each row becomes a card whose cells carry their column's label; a table still wider than the
 * screen scrolls sideways in its own box, never the page.
 * The page on display is kept in the address as `pageParam` (`?page=3`), so that a reload, Back to this page and a
 * link to it show that page again; a page past the end shows the last one.
 * @param {{caption: string, columns: Column[], load: (page: number) => Promise<PageOfResults>, empty: string, pageParam: string, pageSize?: number}} spec
 */
export function pagedTable(spec) {
  // The API's default page size (the platform paginator's).
  const pageSize = spec.pageSize || 50
  const address = pageAddress(spec.pageParam)
  let page = address.initial
  const body = h('tbody')
  const status = h('p', { class: 'table-status muted', role: 'status' })
  const previous = h('button', { type: 'button', class: 'secondary', onclick: () => show(page - 1) }, 'Previous')
  const next = h('button', { type: 'button', class: 'secondary', onclick: () => show(page + 1) }, 'Next')
  const pager = h('div', { class: 'pager', hidden: true }, previous, status, next)
  const table = h('table', { class: 'data' },
    h('caption', { class: 'visually-hidden' }, spec.caption),
    h('thead', null, h('tr', null, spec.columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
    body)
  const message = h('p', { class: 'muted', hidden: true })
  // Focusable by script only: where the keyboard focus goes when the row it was on is gone.
  const element = h('div', { class: 'table-wrap', tabindex: '-1' }, h('div', { class: 'table-scroll' }, table), message, pager)

  /** @param {number} target */
  async function show(target) {
    let result
    try {
      result = await spec.load(target)
    } catch (error) {
      table.hidden = true
      pager.hidden = true
      message.hidden = false
      message.className = 'form-error'
      replace(message, messageOf(error))
      return
    }
    const pages = Math.max(1, Math.ceil(result.count / pageSize))
    // Past the end (an old link, or the last rows gone since): the last page, at once rather than one page at a time.
    if (!result.results.length && target > pages) return show(pages)
    page = target
    address.keep(page)
    message.className = 'muted'
    const rows = result.results
    table.hidden = rows.length === 0
    message.hidden = rows.length !== 0
    replace(message, spec.empty)
    replace(body, rows.map((row) => h('tr', { dataset: { id: String(row.id ?? '') } },
      // One element per cell, so on narrow screens the label and the whole value sit side by side.
      spec.columns.map((c) => h('td', { class: c.class, dataset: { label: c.label } }, h('div', null, c.cell(row)))))))
    const focused = document.activeElement
    pager.hidden = pages <= 1
    previous.toggleAttribute('disabled', !result.previous)
    next.toggleAttribute('disabled', !result.next)
    // Next on the last page (or Previous on the first) is off now: the keyboard focus goes to the other one rather than
    // back to the top of the page.
    if (focused === next && !result.next) (result.previous ? previous : element).focus()
    if (focused === previous && !result.previous) (result.next ? next : element).focus()
    replace(status, `Page ${page} of ${pages} · ${result.count} in all`)
  }

  return {
    element,
    /** Shows the first page (or, after a change, the page on display). */
    reload: (/** @type {boolean} */ keepPage = true) => show(keepPage ? page : 1),
    /** Shows the last page: where a row just made is, in the API's order (oldest first). */
    showLast: () => show(LAST_PAGE),
  }
}

/** The largest page number an address holds: a list asked for it shows its last page. */
const LAST_PAGE = 999999

/**
 * Has the list that keeps its page in the address under `name` show its last page, where a row just made is in the
 * API's order (oldest first), when the page is drawn again next; in the same entry of the history.
 * @param {string} name
 */
export function showLastPageNext(name) {
  const url = new URL(location.href)
  url.searchParams.set(name, String(LAST_PAGE))
  history.replaceState(history.state, '', url)
}

/**
 * The page number a table keeps in the address under `name`: the one the address gives (1 for none, or for one that
 * is no page number, rather than an error), and `keep` to write the page shown back into it, in the same entry of the
 * history. A table whose address has been left (another page, or other filters) meanwhile writes nothing.
 * @param {string} name
 */
function pageAddress(name) {
  const given = new URLSearchParams(location.search).get(name) ?? ''
  // Up to LAST_PAGE.
  const initial = /^[1-9][0-9]{0,5}$/.test(given) ? Number(given) : 1
  const others = (/** @type {Location | URL} */ where) => {
    const query = new URLSearchParams(where.search)
    query.delete(name)
    return `${where.pathname}?${query}`
  }
  const drawnFor = others(location)
  return {
    initial,
    keep(/** @type {number} */ page) {
      if (others(location) !== drawnFor) return
      const url = new URL(location.href)
      if (page === 1) url.searchParams.delete(name)
      else url.searchParams.set(name, String(page))
      if (url.href !== location.href) history.replaceState(history.state, '', url)
    },
  }
}

/**
 * Runs a change started from a button (revoke, end), shows the list again, then says how it went, so the
 * message never describes a list that is not on screen yet. A button that went with its row leaves the keyboard
 * focus on the list, not at the top of the page.
 * @param {HTMLButtonElement} button
 * @param {() => Promise<string>} change resolves to the message to show
 * @param {{reload: (keepPage?: boolean) => Promise<void>, element: HTMLElement}} table
 * @param {boolean} [keepPage]
 */
export async function changeThenReload(button, change, table, keepPage = true) {
  let message
  /** @type {'ok' | 'error'} */
  let kind = 'ok'
  try {
    message = await whileBusy(button, change)
  } catch (error) {
    message = messageOf(error)
    kind = 'error'
  }
  await table.reload(keepPage)
  if (!button.isConnected) table.element.focus()
  toast(message, kind)
}
