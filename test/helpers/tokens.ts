import assert from 'node:assert/strict'
import { json, type TestGateway } from './gateway.ts'

export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` }
}

/** POST /api/gateway/v1/tokens/ as `auth`; fails the test unless it is created. */
export async function createToken(gw: TestGateway, auth: Record<string, string>, body: Record<string, unknown> = {}): Promise<{ id: number; token: string; scope: string; expires: string }> {
  const response = await gw.fetch('/api/gateway/v1/tokens/', {
    method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body),
  })
  const created = await json(response)
  assert.equal(response.status, 201, JSON.stringify(created))
  return created
}
