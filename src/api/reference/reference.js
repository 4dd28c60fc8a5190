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

  /**
   * swagger-ui's requestInterceptor (see referenceRequest in openapi.ts): every request the page makes, "Try it out"'s
   * among them, says it comes from a script that handles a 401 itself, as the web interface's do. The gateway then
   * leaves the Basic challenge out of a 401's WWW-Authenticate, so that trying an operation without credentials shows
   * the 401 in the page instead of the browser asking for a password it would then keep sending (docs/api.md).
   */
  window.gatehouseReferenceRequest = (request) => {
    request.headers['X-Requested-With'] = 'XMLHttpRequest'
    return request
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
        // The Authorize dialog is drawn as plain boxes: a dialog, named by its heading, for assistive technology.
        authorizationPopup: (Original) => (props) => h('div', { role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Available authorizations' }, h(Original, props)),
        // The dialog's close button shows only this icon: a name for it, read out and never shown.
        CloseIcon: (Original) => (props) => h('span', null, h(Original, props), h('span', { className: 'gatehouse-visually-hidden' }, 'Close')),
      },
    }
  }
})()
