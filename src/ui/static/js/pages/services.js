import { api, published, SCRIPT_HEADERS } from '../api.js'
import { formatDate, h, messageOf, replace, whileBusy } from '../dom.js'

/** Refusals that come from the gateway itself: the request never reached the service. */
const GATEWAY_REFUSALS = new Set(['not_authenticated', 'credentials_not_accepted', 'permission_denied', 'insufficient_scope', 'invalid_credentials'])
const UPSTREAM_DOWN = new Set(['upstream_unavailable', 'upstream_timeout'])

/**
 * @typedef {{state: 'up' | 'down' | 'error' | 'unknown', summary: string, details: [string, string][], ms: number}} Health
 */

/**
 * Services (superusers): the APIs behind the gateway (GET /api/) and whether each answers. The gateway reports
 * on itself at ping/; a service is asked at its version's ping/ when its root names a current version, else at
 * its root. Everything goes through the gateway with this session, as any client's requests would.
 * @param {import('../app.js').PageContext} _context
 */
export async function servicesPage(_context) {
  const { apis } = await api('/api/')
  const list = h('div', { class: 'services' })
  const refresh = h('button', { type: 'button', class: 'secondary', onclick: () => whileBusy(/** @type {HTMLButtonElement} */ (refresh), check) }, 'Check again')
  const checked = h('p', { class: 'muted', role: 'status' })

  async function check() {
    const entries = Object.entries(/** @type {Record<string, string>} */ (apis))
    const cards = entries.map(([name, prefix]) => {
      const state = h('span', { class: 'badge' }, 'Checking…')
      const body = h('div', { class: 'service-details' })
      return { name, prefix, state, body, card: h('article', { class: 'service panel', dataset: { service: name } }, h('header', null, h('h2', null, name), state), h('p', null, h('code', null, prefix)), body) }
    })
    replace(list, cards.map((c) => c.card))
    await Promise.all(cards.map(async (c) => {
      const health = c.name === 'gateway' ? await gatewayHealth() : await serviceHealth(c.prefix)
      c.state.className = `badge ${health.state === 'up' ? 'on' : health.state === 'unknown' ? 'neutral' : 'off'}`
      replace(c.state, { up: 'Up', down: 'Down', error: 'Failing', unknown: 'Not checked' }[health.state])
      replace(c.body,
        h('p', null, health.summary),
        health.details.length ? h('dl', { class: 'facts compact' }, health.details.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))) : null,
        h('p', { class: 'muted' }, `Answered in ${health.ms} ms.`))
    }))
    replace(checked, `Checked at ${new Date().toLocaleTimeString()}.`)
  }

  await check()
  return h('div', { class: 'stack' }, h('div', { class: 'toolbar' }, checked, refresh), list)
}

/** @returns {Promise<Health>} */
async function gatewayHealth() {
  const started = performance.now()
  try {
    const ping = await api('ping/')
    const ms = Math.round(performance.now() - started)
    const good = ping.status === 'good' && ping.db_connected !== false
    return {
      state: good ? 'up' : 'error',
      summary: good ? 'The gateway and its database answer.' : 'The gateway answers, but reports a problem.',
      details: [['Status', String(ping.status)], ['Version', String(ping.version)], ['Database', ping.db_connected ? 'connected' : 'not connected'], ['Server time', formatDate(ping.pong)]],
      ms,
    }
  } catch (error) {
    return { state: 'down', summary: messageOf(error), details: [], ms: Math.round(performance.now() - started) }
  }
}

/**
 * @param {string} prefix
 * @returns {Promise<Health>}
 */
async function serviceHealth(prefix) {
  const started = performance.now()
  let url = prefix
  let result = await probe(url)
  const version = result.body && typeof result.body.current_version === 'string' ? result.body.current_version : null
  if (result.status >= 200 && result.status < 300 && version && version.startsWith(prefix)) {
    url = `${version}ping/`
    result = await probe(url)
  }
  const ms = Math.round(performance.now() - started)
  const code = result.body && typeof result.body.code === 'string' ? result.body.code : ''
  const details = /** @type {[string, string][]} */ ([['Checked', url], ['HTTP status', result.status === 302 ? 'redirect' : String(result.status || 'none')]])
  if (result.body && typeof result.body.version === 'string') details.push(['Version', result.body.version])
  if (result.status === 0) return { state: 'down', summary: 'The gateway could not be reached.', details, ms }
  if (UPSTREAM_DOWN.has(code)) return { state: 'down', summary: String(result.body.detail), details, ms }
  if (GATEWAY_REFUSALS.has(code)) {
    return { state: 'unknown', summary: 'The gateway does not pass this login session to the service, so it was not asked. Check it with credentials it accepts.', details, ms }
  }
  if (result.status === 302) return { state: 'unknown', summary: 'The answer is a redirect (perhaps to a login page), so the service\'s health is not known.', details, ms }
  if (result.status >= 500) return { state: 'error', summary: 'The service answers with a server error.', details, ms }
  return { state: 'up', summary: 'The service answers.', details, ms }
}

/**
 * One GET through the gateway. Unlike api(), any answer is a result here, not an error.
 * @param {string} url
 * @returns {Promise<{status: number, body: any}>}
 */
async function probe(url) {
  try {
    const response = await fetch(published(url), { headers: { accept: 'application/json', ...SCRIPT_HEADERS }, credentials: 'same-origin', cache: 'no-store', redirect: 'manual' })
    if (response.type === 'opaqueredirect') return { status: 302, body: null }
    const body = (response.headers.get('content-type') || '').includes('json') ? await response.json().catch(() => null) : null
    return { status: response.status, body }
  } catch {
    return { status: 0, body: null }
  }
}
