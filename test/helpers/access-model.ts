import { after, before } from 'node:test'
import { createApp, type App } from '../../src/app.ts'
import { validateConfig } from '../../src/config/load.ts'
import type { Organization, RoleDefinition, Team } from '../../src/store/access.ts'
import type { Store } from '../../src/store/store.ts'
import type { User } from '../../src/store/users.ts'

/** Counts a store's calls of one of its access reads (every assignment, or some holders' own); `restore` puts it back. */
export function countReads(store: Store, read: 'assignmentPages' | 'assignmentsOfUsers' | 'assignmentsOfTeams'): { readonly count: number; reset: () => void; restore: () => void } {
  const access = store.access
  const original = access[read]
  let count = 0
  access[read] = function (this: typeof access, ...args: unknown[]) {
    count++
    return (original as (...a: unknown[]) => unknown).apply(this, args)
  } as never
  return {
    get count() {
      return count
    },
    reset() {
      count = 0
    },
    restore() {
      access[read] = original as never
    },
  }
}

/**
 * Holds the store's process's next whole read of the access model until let go: once it has read every assignment
 * (`pages`; the assignments held are taken for stale), or the organizations, teams and role definitions (`objects`; it
 * goes on from the assignments held).
 */
export function holdWholeRead(store: Store, after: 'pages' | 'objects'): { reached: Promise<void>; release: () => void; restore: () => void } {
  const access = store.access
  const { assignmentPages, assignmentsFingerprint, loadObjects } = access
  const { promise: reached, resolve: reach } = Promise.withResolvers<void>()
  const { promise: letGo, resolve: release } = Promise.withResolvers<void>()
  if (after === 'pages') {
    access.assignmentsFingerprint = async () => 'stale'
    access.assignmentPages = async function* (...args) {
      const pages = []
      for await (const page of assignmentPages.apply(access, args)) pages.push(page)
      reach()
      await letGo
      yield* pages
    }
  } else {
    access.loadObjects = async () => {
      const objects = await loadObjects.call(access)
      reach()
      await letGo
      return objects
    }
  }
  return {
    reached,
    release,
    restore() {
      release()
      Object.assign(access, { assignmentPages, assignmentsFingerprint, loadObjects })
    },
  }
}

/** Two gateway processes' apps on one database, with a superuser, a user, and an organization with one team. */
export interface TwoProcesses {
  /** Where changes are made. */
  publisher: App
  /** Where their news is applied. */
  other: App
  admin: User
  /** mia, holding no role yet. */
  member: User
  organization: Organization
  team: Team
  roles: Record<'orgAdmin' | 'orgMember' | 'teamMember', RoleDefinition>
}

/**
 * Starts `TwoProcesses` on `stores` before the enclosing suite's tests (the periodic safety net every two seconds) and
 * closes them after; the returned object is filled in once the suite starts.
 */
export function twoProcessesForSuite(stores: { store: Store; other: Store }): TwoProcesses {
  const two = {} as TwoProcesses
  before(async () => {
    const publisher = two.publisher = await createApp(validateConfig({ auth: { max_stale_seconds: 2 } }), stores.store)
    await publisher.bus.start(60_000)
    two.other = await createApp(validateConfig({ auth: { max_stale_seconds: 2 } }), stores.other)
    await two.other.bus.start(60_000)
    const admin = two.admin = await publisher.accounts.create({ username: 'root', password: 'root-password-long', isSuperuser: true })
    two.member = await publisher.accounts.create({ username: 'mia', password: 'mia-password-long' })
    two.organization = await publisher.accessAdmin.createOrganization(admin, { name: 'Platform' })
    two.team = await publisher.accessAdmin.createTeam(admin, { name: 'Automation', organizationId: two.organization.id })
    const named = async (name: string) => (await stores.store.access.findRoleDefinitionByName(name))!
    two.roles = { orgAdmin: await named('Organization Admin'), orgMember: await named('Organization Member'), teamMember: await named('Team Member') }
  })
  after(async () => {
    await two.other?.close()
    await two.publisher?.close()
  })
  return two
}
