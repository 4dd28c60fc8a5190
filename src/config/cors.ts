import { z } from 'zod'

/**
 * A service's `cors` section: which other sites' pages may call it from a browser (the Fetch standard's CORS
 * protocol). The gateway answers the preflights itself and adds the response headers (src/gateway/cors.ts).
 */

/** A web origin as browsers send it (scheme, host and optional port, nothing after), or `*` for any. */
const origin = z.string()
  // Checked as the URL parser reads it too: a port past 65535 or a host it refuses (`https://[1]`) matched the pattern.
  .refine((value) => value === '*' || (/^https?:\/\/(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/.test(value) && URL.canParse(value)),
    'must be an origin such as https://app.example.com (scheme, host, optional port up to 65535; no path), or "*"')
  .transform((value) => (value === '*' ? value : new URL(value).origin))
/** RFC 9110 §5.1 field names. */
const fieldName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/, 'must be a header field name').transform((name) => name.toLowerCase())
const method = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

export const CorsSchema = z.object({
  allowed_origins: z.array(origin).min(1)
    .describe('Origins whose pages may call the service, e.g. `https://app.example.com`; `*` allows any (not with `allow_credentials`).'),
  allowed_methods: z.array(method).min(1).default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'])
    .describe('Methods a preflight may ask for; GET covers HEAD.'),
  // `*` is a field name by RFC 9110's grammar, and other gateways' CORS settings take it for "any": here it matched no
  // header a preflight asks for, so every preflight with request headers was refused, silently, until a browser tried.
  allowed_headers: z.array(fieldName.refine((name) => name !== '*', 'must be a header field name: "*" is not supported, list the headers pages send'))
    .default(['authorization', 'content-type', 'x-csrftoken', 'x-requested-with'])
    .describe('Request headers a preflight may ask for, by name (not `*`; the CORS-safelisted ones are always allowed).'),
  exposed_headers: z.array(fieldName).default([])
    .describe('Response headers, besides the safelisted ones, that the calling page may read; `*` for all only without `allow_credentials`.'),
  allow_credentials: z.boolean().default(false)
    .describe('Let pages send cookies and HTTP authentication (`Access-Control-Allow-Credentials: true`). A page using the session cookie or basic credentials for unsafe methods must also be in `server.trusted_origins` to pass the CSRF check.'),
  max_age_seconds: z.number().int().min(0).max(86_400).default(600)
    .describe('How long a browser may reuse a preflight\'s answer.'),
  allow_private_network: z.boolean().default(false)
    .describe('Let pages of the allowed origins call the service from a public site when the gateway is on a private network or this machine: a preflight with `Access-Control-Request-Private-Network: true` (Chrome\'s Private Network Access) is answered `Access-Control-Allow-Private-Network: true` (docs/proxy.md).'),
}).strict().superRefine((cors, ctx) => {
  if (cors.allow_credentials && cors.allowed_origins.includes('*')) {
    ctx.addIssue({ code: 'custom', path: ['allowed_origins'], message: 'cannot be "*" with allow_credentials: browsers refuse credentials for any origin' })
  }
  // The Fetch standard reads `Access-Control-Expose-Headers: *` as a wildcard only without credentials.
  if (cors.allow_credentials && cors.exposed_headers.includes('*')) {
    ctx.addIssue({ code: 'custom', path: ['exposed_headers'], message: 'cannot be "*" with allow_credentials: browsers read it as a header named "*" then; list the headers' })
  }
})

export type CorsConfig = z.output<typeof CorsSchema>
