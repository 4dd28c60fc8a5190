import { PAGE_ADDRESSES } from './addresses.js'
import { api, ApiError, checkSameUserWith, loginUrl, onOtherLogin, published, PUBLISHED_PATH } from './api.js'
import { dismissErrorToasts, h, messageOf, replace, toast, whileBusy } from './dom.js'
import { profilePage } from './pages/account.js'
import { accessPage } from './pages/access.js'
import { activityPage } from './pages/activity.js'
import { applicationPage, applicationsPage } from './pages/applications.js'
import { servicesPage } from './pages/services.js'
import { allSessionsPage, mySessionsPage } from './pages/sessions.js'
import { settingsPage } from './pages/settings.js'
import { allTokensPage, myTokensPage } from './pages/tokens.js'
import { userPage, usersPage } from './pages/users.js'
import { startSessionClock } from './session.js'

/**
 * @typedef {{id: number, username: string, email: string, first_name: string, last_name: string, is_superuser: boolean,
 *   is_active: boolean, source: string, external: boolean, created: string, last_login: string | null}} User
 * @typedef {{me: User, params: string[], query: URLSearchParams, navigate: (path: string) => void, refresh: () => void, setTitle: (title: string) => void, updateMe: (user: User) => void}} PageContext
 * @typedef {{path: RegExp, title: string, page: (context: PageContext) => Promise<Node>, admin?: boolean, nav?: string}} Route
 */

/** @type {Route[]} */
const ROUTES = [
  { path: PAGE_ADDRESSES.profile, title: 'My account', page: profilePage, nav: '/ui/account' },
  { path: PAGE_ADDRESSES.myTokens, title: 'My tokens', page: myTokensPage, nav: '/ui/tokens' },
  { path: PAGE_ADDRESSES.mySessions, title: 'My sessions', page: mySessionsPage, nav: '/ui/sessions' },
  { path: PAGE_ADDRESSES.access, title: 'Organizations and teams', page: accessPage, nav: '/ui/access' },
  // A user as their organization's admin sees them: the API decides whom the caller may see, create or change.
  { path: PAGE_ADDRESSES.member, title: 'User', page: userPage, nav: '/ui/access' },
  { path: PAGE_ADDRESSES.users, title: 'Users', page: usersPage, admin: true, nav: '/ui/admin/users' },
  { path: PAGE_ADDRESSES.user, title: 'User', page: userPage, admin: true, nav: '/ui/admin/users' },
  { path: PAGE_ADDRESSES.allTokens, title: 'All tokens', page: allTokensPage, admin: true, nav: '/ui/admin/tokens' },
  { path: PAGE_ADDRESSES.allSessions, title: 'All sessions', page: allSessionsPage, admin: true, nav: '/ui/admin/sessions' },
  { path: PAGE_ADDRESSES.applications, title: 'Applications', page: applicationsPage, admin: true, nav: '/ui/admin/applications' },
  { path: PAGE_ADDRESSES.application, title: 'Application', page: applicationPage, admin: true, nav: '/ui/admin/applications' },
  { path: PAGE_ADDRESSES.settings, title: 'Settings', page: settingsPage, admin: true, nav: '/ui/admin/settings' },
  { path: PAGE_ADDRESSES.services, title: 'Services', page: servicesPage, admin: true, nav: '/ui/admin/services' },
  { path: PAGE_ADDRESSES.activity, title: 'Activity', page: activityPage, admin: true, nav: '/ui/admin/activity' },
]

const NAV = [
  { heading: 'My account', links: [['/ui/account', 'Profile'], ['/ui/tokens', 'Tokens'], ['/ui/sessions', 'Sessions']] },
  // Everyone may see organizations and teams; organization and team admins manage their own there.
  { heading: 'Access', links: [['/ui/access', 'Organizations and teams']] },
  {
    heading: 'Administration',
    admin: true,
    links: [['/ui/admin/users', 'Users'], ['/ui/admin/tokens', 'Tokens'], ['/ui/admin/sessions', 'Sessions'], ['/ui/admin/applications', 'Applications'], ['/ui/admin/settings', 'Settings'], ['/ui/admin/services', 'Services'], ['/ui/admin/activity', 'Activity']],
  },
]

const main = /** @type {HTMLElement} */ (document.getElementById('main'))
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'))
const menuButton = /** @type {HTMLButtonElement} */ (document.getElementById('menu-button'))
/** Counts renders, so a slow page that finishes after the person moved on is dropped. */
let renderCount = 0
/** The signed-in user, read once at start. @type {User} */
let me

async function start() {
  main.setAttribute('aria-busy', 'true')
  replace(main, h('p', { class: 'muted' }, 'Loading…'))
  try {
    me = (await api('me/')).results[0]
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return location.assign(loginUrl())
    main.removeAttribute('aria-busy')
    return replace(main, h('p', { class: 'form-error', role: 'alert' }, messageOf(error)))
  }
  renderHeader(me)
  renderNav(me)
  document.addEventListener('click', followLink)
  addEventListener('popstate', () => render(false))
  menuButton.addEventListener('click', () => setMenu(menuButton.getAttribute('aria-expanded') !== 'true'))
  // As a menu closes for a keyboard: Escape, with the focus back on the button that opened it.
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || menuButton.getAttribute('aria-expanded') !== 'true') return
    setMenu(false)
    menuButton.focus()
  })
  void startSessionClock({
    clock: /** @type {HTMLElement} */ (document.getElementById('session-clock')),
    banner: /** @type {HTMLElement} */ (document.getElementById('session-banner')),
    // A page whose session has ended shows nothing more of the account: the login brings the person back here.
    onEnded: () => location.replace(loginUrl(undefined, { ended: true })),
    // Nor of the account it was drawn for once another person has logged in in this browser: it starts again as them.
    userId: me.id,
    onOtherUser: () => location.reload(),
  })
  // A change refused as drawn for a login this browser no longer has (another tab logged out and in): the page starts
  // again with the login the browser has now, whoever that is.
  onOtherLogin(() => location.reload())
  checkSameUserWith(async () => (await api('session/')).user === me.id)
  await render(false)
}

/** @param {User} me */
function renderHeader(me) {
  // A single sign-on's session may be sent on to its provider to sign out there too: a redirect to another site, which
  // only a navigation follows. The gateway takes a GET logout from this site's own pages alone (Sec-Fetch-Site).
  const logout = me.source === 'sso'
    ? h('button', { type: 'button', class: 'link', onclick: () => location.assign(published('/api/gateway/v1/logout/')) }, 'Log out')
    : h('button', { type: 'button', class: 'link', onclick: logOut }, 'Log out')
  replace(/** @type {HTMLElement} */ (document.getElementById('who')),
    h('span', { id: 'session-clock', class: 'session-clock', hidden: true, 'aria-live': 'off' }),
    h('span', { class: 'username' }, me.username),
    logout)
}

async function logOut(/** @type {Event} */ event) {
  try {
    // The gateway answers a logout with a redirect to /api/, as the platform does; the page goes to the login.
    await whileBusy(/** @type {HTMLButtonElement} */ (event.currentTarget), () => api('logout/', { method: 'POST', redirect: 'manual' }))
  } catch (error) {
    // Still signed in: the login page now would tell whoever uses this browser next that the session is over.
    if (!(error instanceof ApiError && error.status === 401)) return toast(`Could not log out: ${messageOf(error)}`, 'error')
  }
  location.assign(loginUrl(published('/ui/')))
}

/** @param {User} me */
function renderNav(me) {
  replace(nav, NAV.filter((group) => !group.admin || me.is_superuser).map((group) =>
    h('section', null,
      h('h2', null, group.heading),
      h('ul', null, group.links.map(([href, text]) => h('li', null, h('a', { href: published(href) }, text)))))))
}

/**
 * The signed-in user's record as a change made from a page saved it: the header shows their new username, and a
 * superuser who is one no longer loses the Administration menu (and the page they are on, if it is one of its).
 * @param {User} user
 */
function updateMe(user) {
  const wasSuperuser = me.is_superuser
  me = user
  const name = document.querySelector('#who .username')
  if (name) name.textContent = user.username
  if (user.is_superuser === wasSuperuser) return
  renderNav(me)
  void render(false)
}

/** @param {boolean} open */
function setMenu(open) {
  menuButton.setAttribute('aria-expanded', String(open))
  nav.classList.toggle('open', open)
}

/** Same-origin links into the interface change the page without reloading it. */
function followLink(/** @type {MouseEvent} */ event) {
  const link = /** @type {Element} */ (event.target).closest('a')
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
  const url = new URL(link.href, location.href)
  const path = gatewayPath(url.pathname)
  if (url.origin !== location.origin || !path?.startsWith('/ui/') || path.startsWith('/ui/assets/') || link.target) return
  event.preventDefault()
  navigate(path + url.search)
}

/**
 * Goes to a page by its gateway path (`/ui/tokens`). The page on display drawn again (after a change made from it)
 * keeps its one entry in the history, so that Back leaves it rather than show it again.
 * @param {string} path
 */
function navigate(path) {
  const address = published(path)
  if (address === location.pathname + location.search) history.replaceState(null, '', address)
  else history.pushState(null, '', address)
  void render(true)
}

/**
 * The gateway path of an address under the published path; undefined for one outside it.
 * @param {string} pathname
 */
function gatewayPath(pathname) {
  return pathname.startsWith(`${PUBLISHED_PATH}/`) ? pathname.slice(PUBLISHED_PATH.length) : undefined
}

/**
 * Shows the page for the current address; `focus` moves the keyboard focus to it, as a page load would.
 * @param {boolean} focus
 */
async function render(focus) {
  const count = ++renderCount
  // Assistive technology, and anything else that reads the page, waits for the data rather than take the placeholder.
  main.setAttribute('aria-busy', 'true')
  setMenu(false)
  dismissErrorToasts()
  const path = gatewayPath(location.pathname) ?? ''
  const route = ROUTES.find((r) => r.path.test(path))
  for (const link of nav.querySelectorAll('a')) {
    if (route?.nav && link.getAttribute('href') === published(route.nav)) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  let content
  if (!route) {
    content = notice('Page not found', 'There is no page at this address.')
  } else if (route.admin && !me.is_superuser) {
    content = notice('Administration', 'Administration is for superusers. Your account is not one.')
  } else {
    const heading = h('h1', null, route.title)
    const setTitle = (/** @type {string} */ title) => {
      document.title = `${title} · Gatehouse`
      heading.textContent = title
    }
    setTitle(route.title)
    replace(main, heading, h('p', { class: 'muted' }, 'Loading…'))
    try {
      const params = /** @type {RegExpExecArray} */ (route.path.exec(path)).slice(1)
      const refresh = () => navigate(path + location.search)
      content = [heading, await route.page({ me, params, query: new URLSearchParams(location.search), navigate, refresh, setTitle, updateMe })]
    } catch (error) {
      content = [heading, h('p', { class: 'form-error', role: 'alert' }, messageOf(error))]
    }
  }
  if (count !== renderCount) return
  replace(main, content)
  main.removeAttribute('aria-busy')
  if (focus) main.focus()
}

/**
 * @param {string} title
 * @param {string} text
 */
function notice(title, text) {
  document.title = `${title} · Gatehouse`
  return [h('h1', null, title), h('p', { class: 'notice' }, text), h('p', null, h('a', { href: published('/ui/account') }, 'Back to my account'))]
}

void start()
