import { z } from 'zod'
import { isPlatformEmailAddress } from './email-address.ts'
import { BIDI_FORMATTING_REFUSED, MAX_EMAIL, withoutBidiFormatting } from '../directory/upstream-profile.ts'

/**
 * What the API and the CLI take as a user's e-mail address, or none (''): at most the column's 254 characters (Django's
 * EmailField), which PostgreSQL would refuse with a failure and SQLite store past what PostgreSQL could take back.
 */
export const emailAddress = z.union([
  z.string().max(MAX_EMAIL, `Ensure this field has no more than ${MAX_EMAIL} characters.`).refine(isPlatformEmailAddress, 'Enter a valid email address.'),
  z.literal(''),
])

/**
 * A person's own details, as users/ and me/ both read them: trimmed of leading and trailing whitespace, as Django
 * REST framework's CharField does by default (`trim_whitespace`) for the platform's serializers' fields, so that the
 * two ways of changing them store the same value for the same input.
 */
export const profileFields = {
  email: z.string().trim().pipe(emailAddress),
  first_name: z.string().trim().max(150).refine(withoutBidiFormatting, BIDI_FORMATTING_REFUSED),
  last_name: z.string().trim().max(150).refine(withoutBidiFormatting, BIDI_FORMATTING_REFUSED),
}
