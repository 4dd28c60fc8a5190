import type { App } from '../app.ts'
import { organizationFilterFields, teamFilterFields } from '../store/access.ts'
import { principalOf, seesRoleOn, visibilityOf } from './access.ts'
import type { GatewayApi } from './gateway-api.ts'
import { serializeOrganization, serializeTeam } from './organizations.ts'
import { listQuery } from './list-query.ts'
import { paged } from './pagination.ts'
import { visibleUser } from './users.ts'
import { idParam } from './validation.ts'

/**
 * A user's memberships and what they open, from the same in-memory snapshot and rules engine the proxy uses:
 * `users/{id}/teams/` and `users/{id}/organizations/` in the platform's shapes (with the filters of teams/ and
 * organizations/, run in the database on the ids the snapshot gives), and `users/{id}/access/`, which
 * also says, for each service, whether the user may reach it (a GET of its prefix, signed in with a session).
 * Each shows what the user holds as far as the caller sees it, as the platform's lists do.
 */
export function userAccessRoutes(api: GatewayApi, app: App): void {
  api.get('/users/:id/teams/', { schema: { params: idParam, querystring: listQuery(teamFilterFields) } }, async (request) => {
    const user = await visibleUser(app, request, request.params.id)
    const { page, filter } = request.query
    const visible = visibilityOf(app, request)
    const ids = app.access.of(user).teams.map((team) => team.id).filter((id) => visible?.teams.has(id) ?? true)
    const { count, results } = await app.store.access.listTeams({ offset: page.offset, limit: page.pageSize, filter, ids })
    return paged(request, page, count, results.map((team) => serializeTeam(app, team)))
  })

  api.get('/users/:id/organizations/', { schema: { params: idParam, querystring: listQuery(organizationFilterFields) } }, async (request) => {
    const user = await visibleUser(app, request, request.params.id)
    const { page, filter } = request.query
    const visible = visibilityOf(app, request)
    const ids = app.access.of(user).organizations.map((organization) => organization.id).filter((id) => visible?.organizations.has(id) ?? true)
    const { count, results } = await app.store.access.listOrganizations({ offset: page.offset, limit: page.pageSize, filter, ids })
    return paged(request, page, count, results.map(serializeOrganization))
  })

  api.get('/users/:id/access/', { schema: { params: idParam } }, async (request) => {
    const user = await visibleUser(app, request, request.params.id)
    const access = app.access.of(user)
    const visible = visibilityOf(app, request)
    // The caller's address says where the caller is, not where another user would come from: their services are
    // judged as from an address no `networks` condition names.
    const self = user.id === principalOf(request).user.id
    const address = self ? request.ip : undefined
    const teams = access.teams.filter((team) => visible?.teams.has(team.id) ?? true)
    const organizations = access.organizations.filter((o) => visible?.organizations.has(o.id) ?? true)
    const held = access.held.filter((h) => seesRoleOn(visible, h))
    // Which services a user reaches, and by which rule, tells the memberships that decide it: to a caller who does
    // not see all of them (an organization admin looking at a member of another organization too), none is judged.
    const seesAll = self || (teams.length === access.teams.length && organizations.length === access.organizations.length && held.length === access.held.length)
    const services = !seesAll ? null : app.config.services.map((service) => {
      const rules = app.serviceRules.get(service.name)
      const decision = rules?.decide({ principal: { userId: user.id, user, method: 'session' }, access, method: 'GET', path: service.prefix, address })
      return {
        service: service.name,
        prefix: service.prefix,
        allowed: user.isActive && (decision?.allowed ?? true),
        rule: decision ? (decision.rule === undefined ? null : `${decision.rule}: ${decision.description}`) : null,
        has_rules: rules !== undefined,
      }
    })
    return {
      user: user.id,
      teams: teams.map((team) => ({ id: team.id, name: team.name, organization: team.organizationId })),
      organizations: organizations.map((o) => ({ id: o.id, name: o.name })),
      roles: [...new Set(held.map((h) => h.role.name))].sort(),
      services,
    }
  })
}
