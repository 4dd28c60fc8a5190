// The address of every page of the interface, in one place: the browser's router shows a page by it, and the
// server answers 404 for an address under /ui/ that none of them matches (src/ui/routes.ts).

export const PAGE_ADDRESSES = Object.freeze({
  profile: /^\/ui\/(?:account)?$/,
  myTokens: /^\/ui\/tokens$/,
  mySessions: /^\/ui\/sessions$/,
  access: /^\/ui\/access$/,
  member: /^\/ui\/access\/users\/(new|[1-9][0-9]*)$/,
  users: /^\/ui\/admin\/users$/,
  user: /^\/ui\/admin\/users\/(new|[1-9][0-9]*)$/,
  allTokens: /^\/ui\/admin\/tokens$/,
  allSessions: /^\/ui\/admin\/sessions$/,
  applications: /^\/ui\/admin\/applications$/,
  application: /^\/ui\/admin\/applications\/([1-9][0-9]*)$/,
  settings: /^\/ui\/admin\/settings$/,
  services: /^\/ui\/admin\/services$/,
  activity: /^\/ui\/admin\/activity$/,
})

/**
 * Whether a path is one of the pages.
 * @param {string} path
 */
export function isPageAddress(path) {
  return Object.values(PAGE_ADDRESSES).some((address) => address.test(path))
}
