/**
 * What a new password of a local account must be, so that online guessing and credential stuffing cannot find it
 * quickly: long enough, not one of the commonly used ones, and not the username (OWASP ASVS 4.0 §2.1, NIST SP
 * 800-63B §5.1.1.2). There are deliberately no composition rules (a digit, an upper-case letter, ...): NIST
 * advises against them, as they push people to predictable variations rather than to longer passwords.
 */

export interface PasswordPolicy {
  /** Fewest characters, counted as Unicode code points (NIST: each counts as one); 0: any non-blank password. */
  minLength: number
  /** Refuse the commonly used passwords and the username. */
  refuseCommon: boolean
}

let commonPasswords: Promise<ReadonlySet<string>> | undefined

/**
 * About 49,000 passwords seen most often in breaches, all lower case, from zxcvbn's list (MIT licence, shipped as
 * the npm package @zxcvbn-ts/language-common). Loaded on the first password set, not at start.
 */
function common(): Promise<ReadonlySet<string>> {
  commonPasswords ??= import('@zxcvbn-ts/language-common').then(({ dictionary }) => new Set(dictionary['passwords-common']))
  return commonPasswords
}

/** Each way `password` falls short of the policy, in words for the person choosing it; empty when it is fine. */
export async function passwordPolicyProblems(password: string, username: string, policy: PasswordPolicy): Promise<string[]> {
  const problems: string[] = []
  if ([...password].length < policy.minLength) {
    problems.push(`This password is too short. It must contain at least ${policy.minLength} characters.`)
  }
  if (policy.refuseCommon) {
    const lower = password.toLowerCase()
    if (lower === username.toLowerCase()) problems.push('The password is the same as the username.')
    else if ((await common()).has(lower)) problems.push('This password is too common.')
  }
  return problems
}
