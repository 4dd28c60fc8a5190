import { GATEWAY_API } from './gateway-api.ts'

/**
 * The pieces of the platform's object shapes (django-ansible-base's CommonModelSerializer) that every resource
 * shares: `url`, and `related` and `summary_fields` that name the objects an object points to.
 */

/** What the platform shows in place of a secret after the response that created it (the audit trail shows it too). */
export { ENCRYPTED } from '../audit/changes.ts'

export const userUrl = (id: number) => `${GATEWAY_API}/users/${id}/`

/**
 * An object's entries in the activity stream, as django-ansible-base links an audited object's (`related.activity_stream`:
 * the list filtered by its content type and id); `kind` is the entries' `content_type` (src/api/activitystream.ts).
 */
export const activityStreamUrl = (kind: string, id: number) => `${GATEWAY_API}/activitystream/?content_type=${kind}&object_id=${id}`

/** A user as another object's `summary_fields` show it. */
export function userSummary(user: { id: number; username: string; firstName: string; lastName: string } | undefined, id: number) {
  return user ? { id: user.id, username: user.username, first_name: user.firstName, last_name: user.lastName } : { id, username: null, first_name: '', last_name: '' }
}
