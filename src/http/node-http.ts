/**
 * node:http for ES modules. Importing it (`import { createServer } from 'node:http'`) also makes Node load its
 * bundled fetch, undici, because an import reads every export of the module and node:http's WebSocket is undici's:
 * about 50 ms and 10 MB more at every start, for nothing. `process.getBuiltinModule` hands out the same module
 * without that. Types still come from `import type ... from 'node:http'`, which loads nothing.
 */
export const { createServer, request, ServerResponse, STATUS_CODES } = process.getBuiltinModule('node:http')
