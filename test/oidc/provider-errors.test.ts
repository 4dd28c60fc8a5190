import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { errors as providerErrors } from 'oidc-provider'
import { errors } from '../../src/oidc/provider-errors.ts'

describe("oidc-provider's error classes, loaded without the provider", () => {
  it('are the very classes oidc-provider exports, so the grants it runs are answered as OAuth errors', () => {
    assert.deepEqual(Object.keys(errors).sort(), Object.keys(providerErrors).sort())
    for (const [name, errorClass] of Object.entries(providerErrors)) assert.equal(errors[name as keyof typeof errors], errorClass, name)
  })
})
