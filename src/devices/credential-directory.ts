import type { EventStore } from '../store/event-store.ts'
import type { Db } from '../store/database.ts'
import { registrationReader, type DeviceKindDeclaration } from './kind.ts'
import type { DeviceCredentials } from './projections.ts'

/**
 * Every MQTT identity's credentials, in memory. After a power cut every device sends its
 * CONNECT at once, and each would be a point read of SQLite while the writer commits (its page
 * cache starts over after each commit: about 25 µs a read, measured in the fleet bench's
 * profile). Loaded from the device_credentials projection at start, then kept by the
 * registrations, moves and removals each commit carries (the same reader as the projection's):
 * the projection stays the truth, this is its copy on the broker's thread.
 */
export function credentialDirectory (db: Db, store: Pick<EventStore, 'subscribe'>, identities: readonly DeviceKindDeclaration[]) {
  const byUsername = new Map<string, DeviceCredentials>()
  for (const row of db.prepare('SELECT * FROM device_credentials').all() as DeviceCredentials[]) byUsername.set(row.username, row)
  const registration = registrationReader(identities)
  // Subscribed in the same turn as the load: no commit can fall between them.
  const unsubscribe = store.subscribe(events => {
    for (const event of events) {
      const change = registration(event)
      if (change === undefined) continue
      if (change.change === 'registered') {
        byUsername.set(change.username, {
          username: change.username, kind: change.kind.kind, device_id: change.id, stream_id: event.stream_id, network_id: change.network, password_sha256: change.passwordSha256
        })
      } else if (change.change === 'moved') {
        const credentials = byUsername.get(change.username)
        if (credentials !== undefined) byUsername.set(change.username, { ...credentials, network_id: change.network })
      } else {
        byUsername.delete(change.username)
      }
    }
  })
  return {
    credentials: (username: string): DeviceCredentials | undefined => byUsername.get(username),
    close: unsubscribe
  }
}
