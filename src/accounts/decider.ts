import type { EventOf } from '../../events/index.ts'
import { UsernameTaken } from '../errors.ts'

// Accounts' business rules, pure: the caller loads the state, runs decide, appends what it returns.
// Slow work (scrypt) and randomness happen before, and come in with the command.

export type AccountCommand =
  | { type: 'RegisterUser', user_identifier: string, username: string, password_hash: string, token_sha256: string }
  | { type: 'IssueAccessToken', user_identifier: string, token_sha256: string }
  | { type: 'RecordFailedAuthentication', user_identifier: string, reason: 'wrong_password' | 'too_many_attempts' }
  | { type: 'RevokeAccessToken', user_identifier: string, token_sha256: string }
  | { type: 'CreateNetwork', network_identifier: string, network_name: string, user_identifier: string }

/** The one fact outside a command that a rule needs: only registration reads it. */
export interface AccountState { usernameTaken: boolean }

const noState: AccountState = { usernameTaken: false }

type AccountEvent = EventOf<'UserRegistered' | 'AccessTokenIssued' | 'AccessTokenRevoked' | 'AuthenticationFailed' | 'NetworkCreated' | 'NetworkMemberAdded'>

export function decideAccount (command: AccountCommand, state: AccountState = noState): AccountEvent[] {
  switch (command.type) {
    case 'RegisterUser':
      if (state.usernameTaken) throw new UsernameTaken()
      return [
        { type: 'UserRegistered', data: { user_identifier: command.user_identifier, username: command.username, password_hash: command.password_hash } },
        { type: 'AccessTokenIssued', data: { user_identifier: command.user_identifier, token_sha256: command.token_sha256 } }
      ]
    case 'IssueAccessToken':
      return [{ type: 'AccessTokenIssued', data: { user_identifier: command.user_identifier, token_sha256: command.token_sha256 } }]
    case 'RevokeAccessToken':
      return [{ type: 'AccessTokenRevoked', data: { user_identifier: command.user_identifier, token_sha256: command.token_sha256 } }]
    case 'RecordFailedAuthentication':
      return [{ type: 'AuthenticationFailed', data: { user_identifier: command.user_identifier, reason: command.reason } }]
    case 'CreateNetwork':
      return [
        { type: 'NetworkCreated', data: { network_identifier: command.network_identifier, network_name: command.network_name, created_by: command.user_identifier } },
        { type: 'NetworkMemberAdded', data: { network_identifier: command.network_identifier, user_identifier: command.user_identifier } }
      ]
    default: {
      const unreachable: never = command
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}
