import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { App } from '../app.ts'
import { refuseLoneSurrogates, refuseNulCharacters } from '../http/input-safety.ts'
import { apiAccessCheck, changeAllowanceCheck } from './access.ts'
import { ChangeAllowance } from './change-allowance.ts'
import { activityStreamRoutes } from './activitystream.ts'
import { associationRoutes } from './associations.ts'
import { applicationRoutes } from './applications.ts'
import { holdBodiesWithin, registerBodyParsers } from './body-parsers.ts'
import { apiRootRoutes, discoveryRoutes } from './discovery.ts'
import { GATEWAY_API } from './gateway-api.ts'
import { loginRoutes } from './login.ts'
import { meRoutes } from './me.ts'
import { answerOtherMethods, collectPaths } from './methods.ts'
import { mySessionRoutes } from './my-sessions.ts'
import { organizationRoutes } from './organizations.ts'
import { realmEventRoutes } from './realm-events.ts'
import { realmSessionRoutes } from './realm-sessions.ts'
import { roleRoutes } from './roles.ts'
import { sessionRoutes } from './sessions.ts'
import { settingsRoutes } from './settings.ts'
import { ssoRoutes } from './sso.ts'
import { tokenRoutes } from './tokens.ts'
import { userAccessRoutes } from './user-access.ts'
import { userRoutes } from './users.ts'
import { schemaValidator } from './validation.ts'

/**
 * The gateway API: `/api/`, `/api/gateway/` and everything under `/api/gateway/v1/`, in one encapsulated scope
 * whose every route is authorized before its body is read, then checked for NUL characters and text that is not
 * Unicode, then validated against its schemas; then a change is counted against its account's allowance. Authorization comes first, so a caller without access learns nothing
 * about the input expected, and makes the gateway read nothing it sends.
 * Its paths' other methods and spellings are answered as the platform answers them (src/api/methods.ts).
 */
export async function registerGatewayApi(server: FastifyInstance, app: App): Promise<void> {
  await server.register(async (scope) => {
    const api = scope.withTypeProvider<ZodTypeProvider>()
    registerBodyParsers(api)
    api.setValidatorCompiler(schemaValidator)
    api.addHook('onSend', async (_request, reply) => {
      reply.header('x-content-type-options', 'nosniff')
      reply.header('cache-control', reply.getHeader('cache-control') ?? 'no-store')
    })
    const accessCheck = apiAccessCheck(app)
    api.addHook('preParsing', accessCheck.beforeBody)
    holdBodiesWithin(api, app)
    api.addHook('preValidation', accessCheck.afterBody)
    api.addHook('preValidation', refuseNulCharacters)
    api.addHook('preValidation', refuseLoneSurrogates)
    // Once the body is valid: a request refused for its input changes nothing and writes no audit entry.
    api.addHook('preHandler', changeAllowanceCheck(new ChangeAllowance(app.config.gateway.changes_per_user)))
    const paths = collectPaths(api)
    apiRootRoutes(api, app)
    realmEventRoutes(api, app)
    realmSessionRoutes(api, app)
    await api.register(async (v1) => {
      const versioned = v1.withTypeProvider<ZodTypeProvider>()
      discoveryRoutes(versioned, app)
      userRoutes(versioned, app)
      meRoutes(versioned, app)
      settingsRoutes(versioned, app)
      loginRoutes(versioned, app, ssoRoutes(versioned, app))
      sessionRoutes(versioned, app)
      tokenRoutes(versioned, app)
      mySessionRoutes(versioned, app)
      activityStreamRoutes(versioned, app)
      organizationRoutes(versioned, app)
      roleRoutes(versioned, app)
      associationRoutes(versioned, app)
      userAccessRoutes(versioned, app)
      applicationRoutes(versioned, app)
    }, { prefix: GATEWAY_API })
    answerOtherMethods(api, paths, app.publishedPath, app.routes.map((route) => route.prefix))
  })
}
