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
 * for a moment (a reconnect that takes over its client id, or one made to another node before
 * the first node's death is known), so connections are counted.
 */
export const devicePresenceProjection: Projection = {
  name: 'device_presence',
  version: 4,
  handles: ['DeviceConnected', 'DeviceDisconnected'],
  tables: ['device_presence'],
  ddl: `CREATE TABLE IF NOT EXISTS device_presence (
      stream_id TEXT PRIMARY KEY, connections INTEGER NOT NULL, changed_at TEXT NOT NULL, client_id TEXT NOT NULL
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const change = db.prepare(`INSERT INTO device_presence (stream_id, connections, changed_at, client_id)
      VALUES (@stream, max(@delta, 0), @at, @client)
      ON CONFLICT (stream_id) DO UPDATE SET connections = max(connections + @delta, 0), client_id = @client,
        -- only going online or offline moves it: a second connection, or one of two ending, does not
        changed_at = CASE WHEN (connections > 0) = (max(connections + @delta, 0) > 0) THEN changed_at ELSE @at END`)
    const reset = db.prepare('UPDATE device_presence SET connections = 0, changed_at = ? WHERE stream_id = ?')
    return event => {
      const at = event.recorded_at
      if (event.type === 'DeviceConnected') {
        change.run({ stream: event.stream_id, at, client: event.data.client_id, delta: 1 })
      } else if (event.type === 'DeviceDisconnected') {
        // One machine's start ends, in one event, whatever an unclean stop left connected; with
        // several nodes each connection ends by itself (another node may hold one of the device's).
        if (event.data.reason === 'service_stopped' && event.metadata.node === undefined) reset.run(at, event.stream_id)
        else change.run({ stream: event.stream_id, at, client: event.data.client_id, delta: -1 })
      }
    }
  }
}

/**
 * Several nodes on one log: each node's open connections, by device. The metadata's `node` is the
 * node holding the connection (for `node_lost`, the dead one), so a dead node's connections are
 * found, and ended, even when the device has connected to another node since.
 */
export const nodeConnectionsProjection: Projection = {
  name: 'node_connections',
  version: 1,
  handles: ['DeviceConnected', 'DeviceDisconnected'],
  tables: ['node_connections'],
  ddl: `CREATE TABLE IF NOT EXISTS node_connections (
      node TEXT NOT NULL, stream_id TEXT NOT NULL, client_id TEXT NOT NULL, connections INTEGER NOT NULL, PRIMARY KEY (node, stream_id)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const opened = db.prepare(`INSERT INTO node_connections (node, stream_id, client_id, connections) VALUES (?, ?, ?, 1)
      ON CONFLICT (node, stream_id) DO UPDATE SET connections = connections + 1, client_id = excluded.client_id`)
    const ended = db.prepare('UPDATE node_connections SET connections = connections - 1 WHERE node = ? AND stream_id = ?')
    const gone = db.prepare('DELETE FROM node_connections WHERE node = ? AND stream_id = ? AND connections <= 0')
    return event => {
      const node = event.metadata.node
      if (node === undefined) return
      if (event.type === 'DeviceConnected') {
        opened.run(node, event.stream_id, event.data.client_id)
      } else if (event.type === 'DeviceDisconnected') {
        ended.run(node, event.stream_id)
        gone.run(node, event.stream_id)
      }
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
  const credentialsOfKind = db.prepare('SELECT * FROM device_credentials WHERE kind = ?')
  // A redelivery follows its first delivery closely: the stream's last 10,000 events are enough.
  const recorded = db.prepare(`SELECT 1 FROM (SELECT metadata FROM events WHERE stream = (SELECT id FROM streams WHERE name = ?)
    ORDER BY stream_version DESC LIMIT 10000) WHERE metadata = ?`).pluck()
  const rejections = db.prepare(`SELECT position, recorded_at, kind, topic, client_id, reason, detail, payload_excerpt, payload_bytes
    FROM device_rejections WHERE stream_id = ? AND position > ? ORDER BY position LIMIT ?`)
  const presence = db.prepare('SELECT connections, changed_at FROM device_presence WHERE stream_id = ?')
  const connected = db.prepare('SELECT stream_id, client_id FROM device_presence WHERE connections > 0')
  const connectedElsewhere = db.prepare('SELECT stream_id, client_id, node FROM node_connections WHERE node <> ?')
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
    /** Every identity of a kind (Home Assistant's accounts, say). */
    identities: (kind: string) => credentialsOfKind.all(kind) as DeviceCredentials[],
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
  [deviceCredentialsProjection(identities), deviceRejectionsProjection, devicePresenceProjection, nodeConnectionsProjection, deviceRegistryProjection(devices), deviceActivityProjection]
