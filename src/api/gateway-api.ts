import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { IncomingMessage, ServerResponse } from 'node:http'

/** Where the gateway's own REST API lives; its routes are declared relative to it. */
export const GATEWAY_API = '/api/gateway/v1'

/** A Fastify scope whose routes declare their params, query and body as zod schemas. */
export type GatewayApi = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, ZodTypeProvider>
