import type { Metadata } from '../../events/index.ts'
import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import { registrationReader, registrationTypes, type DeviceKindDeclaration } from './kind.ts'
import { deviceActivityProjection, deviceRegistryProjection } from './registry.ts'

/** The MQTT identity of every device and account, whatever its kind: username, password hash, network. */
export function deviceCredentialsProjection (kinds: readonly DeviceKindDeclaration[]): Projection {
  return {
    name: 'device_credentials',
    version: 4,
    handles: registrationTypes(kinds),
    tables: ['device_credentials'],
    ddl: `CREATE TABLE IF NOT EXISTS device_credentials (
        username TEXT PRIMARY KEY, kind TEXT NOT NULL, device_id TEXT NOT NULL, stream_id TEXT NOT NULL,
        network_id TEXT NOT NULL, password_sha256 TEXT NOT NULL
      ) STRICT;`,
    prepare (db) {
      const insert = db.prepare(`INSERT INTO device_credentials (username, kind, device_id, stream_id, network_id, password_sha256)
        VALUES (?, ?, ?, ?, ?, ?)`)
      const move = db.prepare('UPDATE device_credentials SET network_id = ? WHERE username = ?')
      const remove = db.prepare('DELETE FROM device_credentials WHERE username = ?')
      const registration = registrationReader(kinds)
      return event => {
        const change = registration(event)
        if (change?.change === 'registered') insert.run(change.username, change.kind.kind, change.id, event.stream_id, change.network, change.passwordSha256)
        else if (change?.change === 'moved') move.run(change.network, change.username)
        else if (change?.change === 'removed') remove.run(change.username)
      }
    }
  }
}

/** Every refused message, subscription and connection, by the device that caused it. */
export const deviceRejectionsProjection: Projection = {
  name: 'device_rejections',
  version: 1,
  handles: ['MessageRejected', 'SubscriptionRefused', 'ConnectionRefused'],
  tables: ['device_rejections'],
  ddl: `CREATE TABLE IF NOT EXISTS device_rejections (
      position INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, recorded_at TEXT NOT NULL, kind TEXT NOT NULL,
      topic TEXT, client_id TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
      payload_excerpt TEXT, payload_bytes INTEGER
    ) STRICT;
    CREATE INDEX IF NOT EXISTS device_rejections_by_stream ON device_rejections (stream_id, position);`,
  prepare (db) {
    const insert = db.prepare(`INSERT INTO device_rejections
      (position, stream_id, recorded_at, kind, topic, client_id, reason, detail, payload_excerpt, payload_bytes)
      VALUES (@position, @stream_id, @recorded_at, @kind, @topic, @client_id, @reason, @detail, @payload_excerpt, @payload_bytes)`)
    return event => {
      const row = {
        position: event.position,
        stream_id: event.stream_id,
        recorded_at: event.recorded_at,
        topic: null as string | null,
        payload_excerpt: null as string | null,
        payload_bytes: null as number | null
      }
      switch (event.type) {
        case 'MessageRejected': {
          const { topic, client_id, reason, detail, payload_excerpt, payload_bytes } = event.data
          insert.run({ ...row, kind: 'message', topic, client_id, reason, detail, payload_excerpt, payload_bytes })
          break
        }
        case 'SubscriptionRefused': {
          const { topic, client_id, reason, detail } = event.data
          insert.run({ ...row, kind: 'subscription', topic, client_id, reason, detail })
          break
        }
        case 'ConnectionRefused': {
          const { client_id, reason, detail } = event.data
          insert.run({ ...row, kind: 'connection', client_id, reason, detail })
          break
        }
      }
    }
  }
}

/**
 * Whether each device is connected now, since when, and when it was last seen: presence,
 * from the broker's connect and disconnect events. A device may hold more than one connection
 * for a moment (a reconnect that takes over its client id), so connections are counted.
 */
export const devicePresenceProjection: Projection = {
  name: 'device_presence',
  version: 3,
  handles: ['DeviceConnected', 'DeviceDisconnected'],
  tables: ['device_presence'],
  // node: the node of the last connection, when several share the log (null on one node).
  ddl: `CREATE TABLE IF NOT EXISTS device_presence (
      stream_id TEXT PRIMARY KEY, connections INTEGER NOT NULL, changed_at TEXT NOT NULL, client_id TEXT NOT NULL, node TEXT
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const change = db.prepare(`INSERT INTO device_presence (stream_id, connections, changed_at, client_id, node)
      VALUES (@stream, max(@delta, 0), @at, @client, @node)
      ON CONFLICT (stream_id) DO UPDATE SET connections = max(connections + @delta, 0), client_id = @client,
        node = CASE WHEN @delta > 0 THEN @node ELSE node END,
        -- only going online or offline moves it: a second connection, or one of two ending, does not
        changed_at = CASE WHEN (connections > 0) = (max(connections + @delta, 0) > 0) THEN changed_at ELSE @at END`)
    const reset = db.prepare('UPDATE device_presence SET connections = 0, changed_at = ? WHERE stream_id = ?')
    return event => {
      const row = { stream: event.stream_id, at: event.recorded_at, node: null }
      if (event.type === 'DeviceConnected') change.run({ ...row, delta: 1, client: event.data.client_id, node: event.metadata.node ?? null })
      else if (event.type === 'DeviceDisconnected' && event.data.reason === 'service_stopped') reset.run(event.recorded_at, event.stream_id)
      else if (event.type === 'DeviceDisconnected') change.run({ ...row, delta: -1, client: event.data.client_id })
    }
  }
}

export interface Presence { online: boolean, since: string | null }

export interface DeviceCredentials {
  username: string
  kind: string
  device_id: string
  stream_id: string
  network_id: string
  password_sha256: string
}

export interface DeviceRejection {
  position: number
  recorded_at: string
  kind: 'message' | 'subscription' | 'connection'
  topic: string | null
  client_id: string
  reason: string
  detail: string
  payload_excerpt: string | null
  payload_bytes: number | null
}

export function deviceQueries (db: Db) {
  const credentials = db.prepare('SELECT * FROM device_credentials WHERE username = ?')
  // A redelivery follows its first delivery closely: the stream's last 10,000 events are enough.
  const recorded = db.prepare(`SELECT 1 FROM (SELECT metadata FROM events WHERE stream = (SELECT id FROM streams WHERE name = ?)
    ORDER BY stream_version DESC LIMIT 10000) WHERE metadata = ?`).pluck()
  const rejections = db.prepare(`SELECT position, recorded_at, kind, topic, client_id, reason, detail, payload_excerpt, payload_bytes
    FROM device_rejections WHERE stream_id = ? AND position > ? ORDER BY position LIMIT ?`)
  const presence = db.prepare('SELECT connections, changed_at FROM device_presence WHERE stream_id = ?')
  const connected = db.prepare('SELECT stream_id, client_id FROM device_presence WHERE connections > 0')
  const connectedElsewhere = db.prepare('SELECT stream_id, client_id, node FROM device_presence WHERE connections > 0 AND node IS NOT NULL AND node <> ?')
  return {
    presence (streamId: string): Presence {
      const row = presence.get(streamId) as { connections: number, changed_at: string } | undefined
      return { online: (row?.connections ?? 0) > 0, since: row?.changed_at ?? null }
    },
    /** Devices the log says are connected: after an unclean stop, none of them really is. */
    connected: () => connected.all() as Array<{ stream_id: string, client_id: string }>,
    /** Several nodes: devices the log shows connected to another node than this one, with it. */
    connectedElsewhere: (node: string) => connectedElsewhere.all(node) as Array<{ stream_id: string, client_id: string, node: string }>,
    credentials: (username: string) => credentials.get(username) as DeviceCredentials | undefined,
    /**
     * Whether a QoS 1 message resent with DUP was recorded already: an event of the stream with the
     * same metadata (the client, its message id and the payload's CRC-32). Derived from the log itself.
     */
    alreadyRecorded: (streamId: string, metadata: Metadata) => recorded.get(streamId, JSON.stringify(metadata)) !== undefined,
    rejections: (streamId: string, after: number, limit: number) => rejections.all(streamId, after, limit) as DeviceRejection[]
  }
}
export type DeviceQueries = ReturnType<typeof deviceQueries>

/** The read models every kind shares, derived from the list of kinds (src/kinds.ts). */
export const deviceProjections = (devices: readonly DeviceKindDeclaration[], identities: readonly DeviceKindDeclaration[]): Projection[] =>
  [deviceCredentialsProjection(identities), deviceRejectionsProjection, devicePresenceProjection, deviceRegistryProjection(devices), deviceActivityProjection]
