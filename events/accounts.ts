import { z } from 'zod'
import { defineEvent } from './define.ts'

// Streams: `user-<user id>`, `network-<network id>`.

export const UserRegistered = defineEvent('UserRegistered', 1, z.object({
  user_identifier: z.uuid(),
  username: z.string(),
  /** scrypt, `scrypt$<salt hex>$<key hex>`; the password itself is never stored. */
  password_hash: z.string()
}))

export const AccessTokenIssued = defineEvent('AccessTokenIssued', 1, z.object({
  user_identifier: z.uuid(),
  /** SHA-256 of the token: tokens are random 256-bit values, so a fast hash is enough. */
  token_sha256: z.string()
}))

/** Log out: the token opens nothing any more. */
export const AccessTokenRevoked = defineEvent('AccessTokenRevoked', 1, z.object({
  user_identifier: z.uuid(),
  token_sha256: z.string()
}))

export const AuthenticationFailed = defineEvent('AuthenticationFailed', 1, z.object({
  user_identifier: z.uuid(),
  /**
   * too_many_attempts: refused without checking the password, after too many wrong ones
   * (MAX_FAILED_LOGINS_PER_MINUTE). A compatible widening of version 1 (see define.ts).
   */
  reason: z.enum(['wrong_password', 'too_many_attempts'])
}))

export const NetworkCreated = defineEvent('NetworkCreated', 1, z.object({
  network_identifier: z.uuid(),
  network_name: z.string(),
  created_by: z.uuid()
}))

export const NetworkMemberAdded = defineEvent('NetworkMemberAdded', 1, z.object({
  network_identifier: z.uuid(),
  user_identifier: z.uuid()
}))
