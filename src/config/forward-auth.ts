import { z } from 'zod'

/**
 * The `forward_auth` section: what a proxy in front that asks Gatehouse for each request's decision must show
 * (docs/forward-auth.md). `server.trusted_proxies` says which addresses may ask; the secret tells the proxy's own
 * question from a client's that reached the endpoints through the same proxy's route to Gatehouse.
 */
export const ForwardAuthSchema = z.object({
  secret: z.string().min(32, 'must be at least 32 characters (openssl rand -hex 32)').optional()
    .describe('A secret the proxy in front sends with every forward-auth question, in `X-Gatehouse-Forward-Auth-Secret`; a question without it, or with another, is refused with 403 untrusted_proxy. Compared in constant time; keep it out of the file with `${NAME}`. Absent: the address in `server.trusted_proxies` is enough, and the proxy must keep the endpoints from its clients (docs/forward-auth.md).'),
}).strict()
