import type { EventType } from '../../events/index.ts'
import { registrationReader, registrationTypes, type DeviceKindDeclaration } from './kind.ts'
import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'

/** Every device of every kind, by the identifier its own API uses, with its name and network. */
export function deviceRegistryProjection (kinds: readonly DeviceKindDeclaration[]): Projection {
  return {
    name: 'device_registry',
    version: 1,
    handles: registrationTypes(kinds),
    tables: ['device_registry'],
    ddl: `CREATE TABLE IF NOT EXISTS device_registry (
        device_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, network_id TEXT NOT NULL,
        stream_id TEXT NOT NULL UNIQUE, position INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX IF NOT EXISTS device_registry_by_network ON device_registry (network_id, position);`,
    prepare (db) {
      const upsert = db.prepare(`INSERT INTO device_registry (device_id, kind, name, network_id, stream_id, position)
        VALUES (@id, @kind, @name, @network, @stream, @position)
        ON CONFLICT (device_id) DO UPDATE SET name = excluded.name, network_id = excluded.network_id
        WHERE device_registry.stream_id = excluded.stream_id`)
      const remove = db.prepare('DELETE FROM device_registry WHERE device_id = ? AND stream_id = ?')
      const registration = registrationReader(kinds)
      return event => {
        const change = registration(event)
        if (change === undefined) return
        if (change.change === 'removed') remove.run(change.id, event.stream_id)
        else upsert.run({ id: change.id, kind: change.kind.kind, name: change.name, network: change.network, stream: event.stream_id, position: event.position })
      }
    }
  }
}

/**
 * What a device itself caused (its reports, its refused messages, its connections) marks it as
 * seen; the live channels' snapshots are the latest event of each channel.
 */
export const SEEN_TYPES: readonly EventType[] = ['DeviceConnected', 'DeviceDisconnected', 'MeasurementsRecorded', 'LogMessagesRecorded',
  'HeartbeatsReceived', 'MessageRejected', 'SubscriptionRefused', 'PowerReported', 'EnergyReported', 'SocketStatusReported',
  'SocketInfoReported', 'SocketAvailabilityReported', 'SocketMessageReceived', 'ValveStateReported', 'StateOfChargeReported',
  'SystemInfoReported', 'ProcessesReported', 'NetworkInterfacesReported', 'MetricsReported']

const ACTIVITY_TYPES: readonly EventType[] = [...SEEN_TYPES, 'SensorRegistered', 'SensorConfigurationRevised', 'ConfigurationAcknowledged', 'ChargingStatusChanged']

/** The latest event of each type on each device's stream: last seen, and the channels' snapshots. */
export const deviceActivityProjection: Projection = {
  name: 'device_activity',
  version: 1,
  handles: ACTIVITY_TYPES,
  tables: ['device_activity'],
  // The same, set-based, for a rebuild: the latest event of each handled type on each stream
  // (without reading a row's data, which the fold would have to fetch).
  rebuildSql: `INSERT INTO device_activity (stream_id, type, position, recorded_at, seen)
    SELECT st.name, t.name, latest.position, strftime('%Y-%m-%dT%H:%M:%fZ', e.recorded_at / 1000.0, 'unixepoch'),
      t.name IN (${SEEN_TYPES.map(type => `'${type}'`).join(', ')})
    FROM (SELECT stream, type, max(position) AS position FROM events
      WHERE type IN (SELECT id FROM event_types WHERE name IN (${ACTIVITY_TYPES.map(type => `'${type}'`).join(', ')}))
      GROUP BY stream, type) latest
    JOIN events e ON e.position = latest.position JOIN streams st ON st.id = latest.stream JOIN event_types t ON t.id = latest.type`,
  ddl: `CREATE TABLE IF NOT EXISTS device_activity (
      stream_id TEXT NOT NULL, type TEXT NOT NULL, position INTEGER NOT NULL, recorded_at TEXT NOT NULL, seen INTEGER NOT NULL,
      PRIMARY KEY (stream_id, type)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const upsert = db.prepare(`INSERT INTO device_activity (stream_id, type, position, recorded_at, seen) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (stream_id, type) DO UPDATE SET position = excluded.position, recorded_at = excluded.recorded_at`)
    const seen = new Set<string>(SEEN_TYPES)
    // Only the latest of each (stream, type) in a group counts: one write per pair, at the group's end.
    const latest = new Map<string, RecordedEvent>()
    return {
      apply: (event: RecordedEvent) => { latest.set(`${event.stream_id}\u0000${event.type}`, event) },
      flush () {
        for (const event of latest.values()) upsert.run(event.stream_id, event.type, event.position, event.recorded_at, seen.has(event.type) ? 1 : 0)
        latest.clear()
      },
      discard: () => { latest.clear() }
    }
  }
}

export interface RegisteredDevice {
  device_id: string
  /** As its capability declares it (src/<capability>/kind.ts). */
  kind: string
  name: string
  network_id: string
  stream_id: string
}

export function registryQueries (db: Db) {
  const columns = 'device_id, kind, name, network_id, stream_id'
  const byId = db.prepare(`SELECT ${columns} FROM device_registry WHERE device_id = ?`)
  const byStream = db.prepare(`SELECT ${columns} FROM device_registry WHERE stream_id = ?`)
  const ofNetwork = db.prepare(`SELECT ${columns} FROM device_registry WHERE network_id = ? ORDER BY position`)
  const ofKind = db.prepare(`SELECT ${columns} FROM device_registry WHERE kind = ? ORDER BY position`)
  const ofUser = db.prepare(`SELECT ${columns} FROM device_registry
    WHERE network_id IN (SELECT network_id FROM network_members WHERE user_id = ?) ORDER BY position`)
  const lastSeen = db.prepare('SELECT max(recorded_at) FROM device_activity WHERE stream_id = ? AND seen = 1').pluck()
  const latest = db.prepare(`SELECT max(position) FROM device_activity WHERE stream_id = ? AND type IN (SELECT value FROM json_each(?))`).pluck()
  return {
    device: (id: string) => byId.get(id) as RegisteredDevice | undefined,
    deviceOfStream: (streamId: string) => byStream.get(streamId) as RegisteredDevice | undefined,
    devicesOf: (networkId: string) => ofNetwork.all(networkId) as RegisteredDevice[],
    devicesOfKind: (kind: string) => ofKind.all(kind) as RegisteredDevice[],
    devicesOfUser: (userId: string) => ofUser.all(userId) as RegisteredDevice[],
    lastSeen: (streamId: string) => (lastSeen.get(streamId) as string | null) ?? null,
    /** The position of the latest event of these types on the stream, if any. */
    latestPosition: (streamId: string, types: readonly string[]) => (latest.get(streamId, JSON.stringify(types)) as number | null) ?? null
  }
}
export type RegistryQueries = ReturnType<typeof registryQueries>
