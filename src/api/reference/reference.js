// The API reference's own script, loaded after swagger-ui's and run before swagger-ui starts. It does three things
// swagger-ui leaves to its host: follow the reader's colour scheme (swagger-ui's dark theme hangs on `html.dark-mode`,
// which only its top bar sets, and the reference has none), mark the requests the page makes as a script's, and give
// swagger-ui a plugin, through its documented plugin interface (wrapComponents), for what its markup lacks for
// assistive technology.
'use strict'

;(() => {
  const dark = matchMedia('(prefers-color-scheme: dark)')
  const followScheme = () => document.documentElement.classList.toggle('dark-mode', dark.matches)
  followScheme()
  dark.addEventListener('change', followScheme)

  const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

  /** The cookie `name` as the gateway reads it: the last one of that name, as Django reads a Cookie header. */
  const readCookie = (name) => {
    const found = document.cookie.split(';').map((part) => part.trim().split('=')).filter(([key]) => key === name).at(-1)
    if (found === undefined) return undefined
    const value = found.slice(1).join('=')
    try {
      return decodeURIComponent(value)
    } catch {
      return value
    }
  }

  /**
   * swagger-ui's requestInterceptor (see referenceRequest in openapi.ts). Every request the page makes, "Try it out"'s
   * among them, says it comes from a script that handles a 401 itself, as the web interface's do: the gateway then
   * leaves the Basic challenge out of a 401's WWW-Authenticate, so that trying an operation without credentials shows
   * the 401 in the page instead of the browser asking for a password it would then keep sending. An unsafe method
   * carries the CSRF token of the browser's session (the `csrftoken` cookie, in X-CSRFToken), as the web interface's
   * changes do and the platform's reference (drf-spectacular's swagger-ui) sends it, so that an operation tried with
   * the session is not refused for want of it (docs/api.md).
   */
  window.gatehouseReferenceRequest = (request) => {
    request.headers['X-Requested-With'] = 'XMLHttpRequest'
    const token = readCookie('csrftoken')
    if (token !== undefined && !SAFE_METHODS.has(String(request.method ?? 'GET').toUpperCase())) request.headers['X-CSRFToken'] = token
    return request
  }

  /** What the keyboard reaches in a dialog, in the order it reaches them (those not shown are left out later). */
  const FOCUSABLE = 'a[href], button:not(:disabled), input:not(:disabled):not([type=hidden]), select:not(:disabled), textarea:not(:disabled), [tabindex]:not([tabindex="-1"])'

  /**
   * swagger-ui's Authorize dialog as a modal dialog should behave for the keyboard (WAI-ARIA Authoring Practices, "Dialog
   * (Modal)"): when it opens, focus moves to the first control of its content (swagger-ui's own autofocus lands on the
   * field of the last kind of credentials, past the others); Tab and Shift-Tab cycle through its controls and never
   * leave it for the page behind; when it closes (its Close buttons, or Escape, which swagger-ui handles), focus goes
   * back to the button that opened it, or to the Authorize button at the top when that one is no longer drawn.
   */
  const modalDialog = (React, Original) => function GatehouseModalDialog(props) {
    const dialog = React.useRef(null)
    // Read while rendering, before swagger-ui's autofocus moves focus into the dialog.
    const [opener] = React.useState(() => document.activeElement)
    React.useEffect(() => {
      const controls = () => [...dialog.current.querySelectorAll(FOCUSABLE)].filter((element) => element.getClientRects().length > 0)
      const first = dialog.current.querySelector('.modal-ux-content')?.querySelector(FOCUSABLE) ?? controls()[0]
      first?.focus()
      const keepFocusInside = (event) => {
        if (event.key !== 'Tab' || event.altKey || event.ctrlKey || event.metaKey) return
        const all = controls()
        if (!all.length) return
        const at = all.indexOf(document.activeElement)
        // From the last control forward, from the first backward, or from outside (the focused control was removed,
        // as Authorize and Logout are once pressed): round to the other end, or into the dialog.
        if (event.shiftKey ? at <= 0 : at === -1 || at === all.length - 1) {
          event.preventDefault()
          ;(event.shiftKey ? all.at(-1) : all[0]).focus()
        }
      }
      document.addEventListener('keydown', keepFocusInside, true)
      return () => {
        document.removeEventListener('keydown', keepFocusInside, true)
        const back = opener instanceof HTMLElement && opener.isConnected && opener !== document.body ? opener : document.querySelector('.auth-wrapper .btn.authorize')
        back?.focus()
      }
    }, [])
    return React.createElement('div', { ref: dialog, role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Available authorizations' }, React.createElement(Original, props))
  }

  /** The plugin the initializer hands to swagger-ui (see referencePlugin in openapi.ts). */
  window.gatehouseReferencePlugin = (system) => {
    const h = system.React.createElement
    return {
      wrapComponents: {
        // The operation's path is a link inside the button that opens the operation: a control inside a control, which
        // screen readers announce as one and keyboards cannot reach. Opening an operation puts its link in the address
        // bar all the same (deep linking), and the copy button beside it copies the path.
        OperationSummaryPath: (Original) => (props) => h(Original, { ...props, operationProps: props.operationProps.set('isDeepLinkingEnabled', false) }),
        // A button that shows its words is named by them: an aria-label that says something else ("Apply credentials"
        // on Authorize) leaves speech input users saying a name the button does not answer to.
        Button: (Original) => (props) => {
          if (typeof props.children !== 'string' || !('aria-label' in props)) return h(Original, props)
          const { 'aria-label': _label, ...named } = props
          return h(Original, named)
        },
        // The fields of the Authorize dialog have labels ("Username:"), which an aria-label repeating the field's id
        // ("auth-basic-username") overrides: screen readers would read the id out.
        Input: (Original) => (props) => {
          if (props.id === undefined || props['aria-label'] !== props.id) return h(Original, props)
          const { 'aria-label': _label, ...labelled } = props
          return h(Original, labelled)
        },
        // The Authorize dialog is drawn as plain boxes: a dialog, named by its heading, for assistive technology, which
        // keeps the keyboard inside it while it is open.
        authorizationPopup: (Original) => modalDialog(system.React, Original),
        // The dialog's close button shows only this icon: a name for it, read out and never shown.
        CloseIcon: (Original) => (props) => h('span', null, h(Original, props), h('span', { className: 'gatehouse-visually-hidden' }, 'Close')),
      },
    }
  }
})()
