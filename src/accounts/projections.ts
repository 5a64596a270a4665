import type { Projection } from '../store/projection.ts'
import type { Db } from '../store/database.ts'

export const usersProjection: Projection = {
  name: 'users',
  version: 2,
  handles: ['UserRegistered', 'AccessTokenIssued', 'AccessTokenRevoked'],
  tables: ['users', 'access_tokens'],
  ddl: `
    CREATE TABLE IF NOT EXISTS users (
      user_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS access_tokens (
      token_sha256 TEXT PRIMARY KEY, user_id TEXT NOT NULL, issued_at TEXT NOT NULL
    ) STRICT;`,
  prepare (db) {
    const insertUser = db.prepare('INSERT INTO users (user_id, username, password_hash) VALUES (?, ?, ?)')
    const insertToken = db.prepare('INSERT INTO access_tokens (token_sha256, user_id, issued_at) VALUES (?, ?, ?)')
    const deleteToken = db.prepare('DELETE FROM access_tokens WHERE token_sha256 = ?')
    return event => {
      switch (event.type) {
        case 'UserRegistered':
          insertUser.run(event.data.user_identifier, event.data.username, event.data.password_hash)
          break
        case 'AccessTokenIssued':
          insertToken.run(event.data.token_sha256, event.data.user_identifier, event.recorded_at)
          break
        case 'AccessTokenRevoked':
          deleteToken.run(event.data.token_sha256)
          break
      }
    }
  }
}

export const networksProjection: Projection = {
  name: 'networks',
  version: 1,
  handles: ['NetworkCreated', 'NetworkMemberAdded'],
  tables: ['networks', 'network_members'],
  ddl: `
    CREATE TABLE IF NOT EXISTS networks (
      network_id TEXT PRIMARY KEY, network_name TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS network_members (
      network_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (user_id, network_id)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const insertNetwork = db.prepare('INSERT INTO networks (network_id, network_name, created_by, created_at) VALUES (?, ?, ?, ?)')
    const insertMember = db.prepare('INSERT OR IGNORE INTO network_members (network_id, user_id) VALUES (?, ?)')
    return event => {
      switch (event.type) {
        case 'NetworkCreated':
          insertNetwork.run(event.data.network_identifier, event.data.network_name, event.data.created_by, event.recorded_at)
          break
        case 'NetworkMemberAdded':
          insertMember.run(event.data.network_identifier, event.data.user_identifier)
          break
      }
    }
  }
}

export interface UserRow { user_id: string, username: string, password_hash: string }

/** Read-side queries over the account projections. */
export function accountQueries (db: Db) {
  const userByName = db.prepare('SELECT * FROM users WHERE username = ?')
  const userByToken = db.prepare('SELECT user_id FROM access_tokens WHERE token_sha256 = ?').pluck()
  // Read from the log itself: a user's stream is short, and the count survives restarts.
  const wrongPasswordsSince = db.prepare(`SELECT count(*) FROM event_rows WHERE stream_id = ? AND type = 'AuthenticationFailed'
    AND recorded_at > ? AND json_extract(data, '$.reason') = 'wrong_password'`).pluck()
  const membership = db.prepare('SELECT 1 FROM network_members WHERE network_id = ? AND user_id = ?').pluck()
  const networksOf = db.prepare(`SELECT n.network_id AS network_identifier, n.network_name
    FROM networks n JOIN network_members m ON m.network_id = n.network_id WHERE m.user_id = ? ORDER BY n.created_at, n.network_id`)
  return {
    userByName: (username: string) => userByName.get(username) as UserRow | undefined,
    userByTokenHash: (tokenSha256: string) => userByToken.get(tokenSha256) as string | undefined,
    /** Wrong passwords given for the user after `since` (ms since the epoch). */
    wrongPasswordsSince: (userId: string, since: number) => wrongPasswordsSince.get(`user-${userId}`, since) as number,
    isMember: (networkId: string, userId: string) => membership.get(networkId, userId) !== undefined,
    networksOf: (userId: string) => networksOf.all(userId) as Array<{ network_identifier: string, network_name: string }>
  }
}
export type AccountQueries = ReturnType<typeof accountQueries>
