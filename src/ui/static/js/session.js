import { api, onUnauthenticated } from './api.js'
import { h, messageOf, replace, whileBusy } from './dom.js'

/** How long before the end the warning appears. */
export const WARN_SECONDS = 120
/** Sessions do not slide with use, but another tab may extend this one: read the end again now and then. */
const SYNC_SECONDS = 60

/**
 * The session's remaining time, in the header, and a warning with a button to stay logged in before it ends.
 * The end comes from GET session/ (`expires_in_seconds`, so the two clocks need not agree); reading it does
 * not extend the session, only POST session/ does. Once the server says the session is gone, `onEnded` runs; once it
 * says the session is another person's (someone logged in since in another tab), `onOtherUser` runs.
 * @param {{clock: HTMLElement, banner: HTMLElement, userId: number, onEnded: () => void, onOtherUser: () => void}} places
 */
export function startSessionClock(places) {
  /** Local time (ms) at which the session ends; 0 until known. */
  let endsAt = 0
  let ended = false
  /** Set once `onEnded` has run, so that it runs once. */
  let leaving = false
  /** @type {'ok' | 'warning' | 'ended'} */
  let shown = 'ok'
  const remainingText = h('strong')
  const warningText = h('span')

  const sync = async () => {
    try {
      const session = await api('session/')
      if (session.user !== places.userId) return places.onOtherUser()
      endsAt = Date.now() + Number(session.expires_in_seconds) * 1000
      ended = false
    } catch (error) {
      // 404: the session is gone (ended or expired); 401: the API refused this browser's credentials.
      const status = /** @type {any} */ (error).status
      if (status === 401 || status === 404) ended = true
    }
    tick()
  }

  const extend = async (/** @type {HTMLButtonElement} */ button) => {
    try {
      const session = await whileBusy(button, () => api('session/', { method: 'POST' }))
      if (session.user !== places.userId) return places.onOtherUser()
      endsAt = Date.now() + Number(session.expires_in_seconds) * 1000
    } catch (error) {
      replace(warningText, `Could not extend the session: ${messageOf(error)}`)
      return
    }
    tick()
  }

  const secondsLeft = () => Math.max(0, Math.ceil((endsAt - Date.now()) / 1000))

  function tick() {
    if (ended) {
      if (!leaving) places.onEnded()
      leaving = true
      return
    }
    if (!endsAt) return
    const left = secondsLeft()
    places.clock.hidden = false
    places.clock.classList.toggle('warning', left <= WARN_SECONDS)
    replace(remainingText, clockText(left))
    const state = left === 0 ? 'ended' : left <= WARN_SECONDS ? 'warning' : 'ok'
    if (state === 'warning') replace(warningText, `Your session ends in ${clockText(left)}.`)
    if (state === shown) return
    shown = state
    places.banner.hidden = state === 'ok'
    places.banner.className = `session-banner ${state}`
    if (state === 'warning') {
      replace(places.banner, warningText, ' ',
        h('button', { type: 'button', onclick: (/** @type {Event} */ e) => extend(/** @type {HTMLButtonElement} */ (e.currentTarget)) }, 'Stay logged in'))
    } else if (state === 'ended') {
      // This clock says the time is up, but another tab may have extended the session: the server decides.
      replace(places.banner, 'Your session has ended.')
      void sync()
    }
  }

  replace(places.clock, h('span', { class: 'label' }, 'Session '), remainingText)
  places.clock.title = 'Time left before this login session ends'
  onUnauthenticated(() => {
    ended = true
    tick()
  })
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void sync()
  })
  setInterval(tick, 1000)
  setInterval(() => {
    if (!ended && document.visibilityState === 'visible') void sync()
  }, SYNC_SECONDS * 1000)
  return sync()
}

/**
 * 905 -> "15:05", 3725 -> "1:02:05".
 * @param {number} seconds
 */
export function clockText(seconds) {
  const hours = Math.floor(seconds / 3600)
  const minutes = Math.floor((seconds % 3600) / 60)
  const rest = String(seconds % 60).padStart(2, '0')
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`
}
