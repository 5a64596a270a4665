import type { JsonObject } from '../../events/define.ts'
import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import { decodeData } from '../store/recorded-event.ts'
import type { Measurement } from '../../events/sensors.ts'
import { evolveSensor, initialSensorState, type SensorEvent, type SensorState } from './decider.ts'

export const PAGE_SIZE = 64
export const BUCKET_SECONDS = 4 * 60 * 60

/** The sensor registry, the decider's state of each sensor, and every configuration revision. */
export const sensorsProjection: Projection = {
  name: 'sensors',
  version: 2,
  handles: ['SensorRegistered', 'SensorConfigurationRevised', 'ConfigurationAcknowledged'],
  tables: ['sensors', 'sensor_configurations'],
  ddl: `
    CREATE TABLE IF NOT EXISTS sensors (
      sensor_key INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE, network_id TEXT NOT NULL, sensor_name TEXT NOT NULL,
      revision INTEGER NOT NULL, state TEXT NOT NULL, registered_at TEXT NOT NULL,
      UNIQUE (network_id, sensor_name)
    ) STRICT;
    CREATE TABLE IF NOT EXISTS sensor_configurations (
      sensor_id TEXT NOT NULL, revision INTEGER NOT NULL, configuration TEXT NOT NULL, revised_at TEXT NOT NULL,
      acknowledged_at REAL, success INTEGER,
      PRIMARY KEY (sensor_id, revision)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const selectState = db.prepare('SELECT state FROM sensors WHERE sensor_id = ?').pluck()
    const insertSensor = db.prepare(`INSERT INTO sensors (sensor_id, network_id, sensor_name, revision, state, registered_at)
      VALUES (?, ?, ?, 0, ?, ?)`)
    const updateSensor = db.prepare('UPDATE sensors SET network_id = ?, sensor_name = ?, revision = ?, state = ? WHERE sensor_id = ?')
    const updateState = db.prepare('UPDATE sensors SET state = ? WHERE sensor_id = ?')
    const insertConfiguration = db.prepare(`INSERT INTO sensor_configurations (sensor_id, revision, configuration, revised_at)
      VALUES (?, ?, ?, ?)`)
    const acknowledge = db.prepare('UPDATE sensor_configurations SET acknowledged_at = ?, success = ? WHERE sensor_id = ? AND revision = ?')
    const evolve = (event: SensorEvent): string => {
      const stored = selectState.get(event.data.sensor_identifier) as string | undefined
      const state = stored === undefined ? initialSensorState() : JSON.parse(stored) as SensorState
      return JSON.stringify(evolveSensor(state, event))
    }
    return event => {
      switch (event.type) {
        case 'SensorRegistered': {
          const { sensor_identifier: id, network_identifier, sensor_name, configuration } = event.data
          insertSensor.run(id, network_identifier, sensor_name, evolve(event), event.recorded_at)
          insertConfiguration.run(id, 0, JSON.stringify(configuration), event.recorded_at)
          break
        }
        case 'SensorConfigurationRevised': {
          const { sensor_identifier: id, network_identifier, sensor_name, revision, configuration } = event.data
          updateSensor.run(network_identifier, sensor_name, revision, evolve(event), id)
          insertConfiguration.run(id, revision, JSON.stringify(configuration), event.recorded_at)
          break
        }
        case 'ConfigurationAcknowledged': {
          const { sensor_identifier: id, revision, acknowledged_at, success } = event.data
          updateState.run(evolve(event), id)
          acknowledge.run(acknowledged_at, success ? 1 : 0, id, revision)
          break
        }
      }
    }
  }
}

/**
 * Each measurement, by the sensor's own timestamp, and their counts in 4-hour buckets. A row is
 * only a key: the value stays in its MeasurementsRecorded event (position, and its index there),
 * so each measurement is stored once.
 */
export const measurementsProjection: Projection = {
  name: 'measurements',
  version: 2,
  handles: ['MeasurementsRecorded'],
  tables: ['measurements', 'measurement_buckets'],
  ddl: `
    CREATE TABLE IF NOT EXISTS measurements (
      sensor INTEGER NOT NULL, creation_timestamp REAL NOT NULL, position INTEGER NOT NULL, item INTEGER NOT NULL,
      PRIMARY KEY (sensor, creation_timestamp, position, item)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS measurement_buckets (
      sensor_id TEXT NOT NULL, bucket_start INTEGER NOT NULL, count INTEGER NOT NULL,
      PRIMARY KEY (sensor_id, bucket_start)
    ) STRICT, WITHOUT ROWID;`,
  // The same mapping, set-based, for a rebuild: a measurement per item of each batch; the sensor
  // is the event's sensor_identifier (stored once, in the stream's name `sensor-<id>`).
  rebuildSql: `
    INSERT INTO measurements (sensor, creation_timestamp, position, item)
      SELECT s.sensor_key, m.value ->> 'timestamp', e.position, m.key
      FROM events e JOIN streams st ON st.id = e.stream
      JOIN sensors s ON s.sensor_id = CASE WHEN e.data GLOB '{"sensor_identifier":*' THEN e.data ->> 'sensor_identifier' ELSE substr(st.name, 8) END
      JOIN json_each(e.data, '$.measurements') m
      WHERE e.type = (SELECT id FROM event_types WHERE name = 'MeasurementsRecorded');
    INSERT INTO measurement_buckets (sensor_id, bucket_start, count)
      SELECT s.sensor_id, b.bucket, b.n
      FROM (SELECT sensor, CAST(floor(creation_timestamp / ${BUCKET_SECONDS}.0) AS INTEGER) * ${BUCKET_SECONDS} AS bucket, count(*) AS n
        FROM measurements GROUP BY sensor, bucket) b
      JOIN sensors s ON s.sensor_key = b.sensor;`,
  prepare (db) {
    const sensorKey = db.prepare('SELECT sensor_key FROM sensors WHERE sensor_id = ?').pluck()
    const insert = db.prepare('INSERT INTO measurements (sensor, creation_timestamp, position, item) VALUES (?, ?, ?, ?)')
    const count = db.prepare(`INSERT INTO measurement_buckets (sensor_id, bucket_start, count) VALUES (?, ?, ?)
      ON CONFLICT (sensor_id, bucket_start) DO UPDATE SET count = count + excluded.count`)
    // Bucket counts are summed over the group and written once per bucket at its end.
    const counts = new Map<string, { id: string, bucket: number, n: number }>()
    // A sensor's key never changes once committed; a rolled-back group forgets what it looked up.
    const keys = new Map<string, number>()
    return {
      apply (event) {
        if (event.type !== 'MeasurementsRecorded') return
        const id = event.data.sensor_identifier
        let key = keys.get(id)
        if (key === undefined) keys.set(id, key = sensorKey.get(id) as number)
        const measurements = event.data.measurements
        for (let item = 0; item < measurements.length; item++) {
          const timestamp = measurements[item]!.timestamp
          insert.run(key, timestamp, event.position, item)
          const bucket = Math.floor(timestamp / BUCKET_SECONDS) * BUCKET_SECONDS
          const counted = counts.get(`${id}\u0000${bucket}`)
          if (counted === undefined) counts.set(`${id}\u0000${bucket}`, { id, bucket, n: 1 })
          else counted.n += 1
        }
      },
      flush () {
        for (const { id, bucket, n } of counts.values()) count.run(id, bucket, n)
        counts.clear()
      },
      discard: () => { counts.clear(); keys.clear() }
    }
  }
}

/** Each log message, and the warning/error aggregates by (severity, subject). */
export const logMessagesProjection: Projection = {
  name: 'log_messages',
  version: 1,
  handles: ['LogMessagesRecorded'],
  tables: ['log_messages', 'log_aggregates'],
  ddl: `
    CREATE TABLE IF NOT EXISTS log_messages (
      sensor_id TEXT NOT NULL, creation_timestamp REAL NOT NULL, revision INTEGER NOT NULL, severity TEXT NOT NULL,
      subject TEXT NOT NULL, details TEXT, received_at TEXT NOT NULL, position INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX IF NOT EXISTS log_messages_by_time ON log_messages (sensor_id, creation_timestamp);
    CREATE TABLE IF NOT EXISTS log_aggregates (
      sensor_id TEXT NOT NULL, severity TEXT NOT NULL, subject TEXT NOT NULL,
      min_revision INTEGER NOT NULL, max_revision INTEGER NOT NULL,
      min_creation_timestamp REAL NOT NULL, max_creation_timestamp REAL NOT NULL, count INTEGER NOT NULL,
      PRIMARY KEY (sensor_id, severity, subject)
    ) STRICT, WITHOUT ROWID;`,
  prepare (db) {
    const insert = db.prepare(`INSERT INTO log_messages (sensor_id, creation_timestamp, revision, severity, subject, details, received_at, position)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
    const aggregate = db.prepare(`INSERT INTO log_aggregates
      (sensor_id, severity, subject, min_revision, max_revision, min_creation_timestamp, max_creation_timestamp, count)
      VALUES (@id, @severity, @subject, @revision, @revision, @timestamp, @timestamp, 1)
      ON CONFLICT (sensor_id, severity, subject) DO UPDATE SET
        min_revision = min(min_revision, excluded.min_revision), max_revision = max(max_revision, excluded.max_revision),
        min_creation_timestamp = min(min_creation_timestamp, excluded.min_creation_timestamp),
        max_creation_timestamp = max(max_creation_timestamp, excluded.max_creation_timestamp), count = count + 1`)
    return event => {
      if (event.type !== 'LogMessagesRecorded') return
      const id = event.data.sensor_identifier
      for (const log of event.data.log_messages) {
        insert.run(id, log.timestamp, log.revision, log.severity, log.subject, log.details ?? null, event.recorded_at, event.position)
        if (log.severity === 'warning' || log.severity === 'error') {
          aggregate.run({ id, severity: log.severity, subject: log.subject, revision: log.revision, timestamp: log.timestamp })
        }
      }
    }
  }
}

export const sensorProjections = [sensorsProjection, measurementsProjection, logMessagesProjection]

export interface SensorRow {
  sensor_id: string
  network_id: string
  sensor_name: string
  revision: number
  state: SensorState
}

export type Direction = 'next' | 'previous'

/** Keyset pages by the sensor's own timestamp, ascending within a page; none given: the newest page. */
function pageQuery (db: Db, table: string, columns: string) {
  const newest = db.prepare(`SELECT * FROM (SELECT ${columns}, rowid AS r FROM ${table} WHERE sensor_id = ?
    ORDER BY creation_timestamp DESC, rowid DESC LIMIT ${PAGE_SIZE}) ORDER BY creation_timestamp, r`)
  const next = db.prepare(`SELECT ${columns} FROM ${table} WHERE sensor_id = ? AND creation_timestamp > ?
    ORDER BY creation_timestamp, rowid LIMIT ${PAGE_SIZE}`)
  const previous = db.prepare(`SELECT * FROM (SELECT ${columns}, rowid AS r FROM ${table} WHERE sensor_id = ? AND creation_timestamp < ?
    ORDER BY creation_timestamp DESC, rowid DESC LIMIT ${PAGE_SIZE}) ORDER BY creation_timestamp, r`)
  return (sensorId: string, timestamp: number | undefined, direction: Direction) => {
    const rows = timestamp === undefined
      ? newest.all(sensorId)
      : (direction === 'next' ? next : previous).all(sensorId, timestamp)
    return rows as Array<JsonObject>
  }
}

/**
 * Pages of measurements read as the log holds them: the keys from the projection, each value
 * from its event (an event decoded once per page, however many of its measurements it holds).
 */
function measurementPages (db: Db) {
  const columns = `m.creation_timestamp, m.position, m.item FROM measurements m
    WHERE m.sensor = (SELECT sensor_key FROM sensors WHERE sensor_id = ?)`
  const newest = db.prepare(`SELECT ${columns} ORDER BY m.creation_timestamp DESC, m.position DESC, m.item DESC LIMIT ${PAGE_SIZE}`)
  const next = db.prepare(`SELECT ${columns} AND m.creation_timestamp > ? ORDER BY m.creation_timestamp, m.position, m.item LIMIT ${PAGE_SIZE}`)
  const previous = db.prepare(`SELECT ${columns} AND m.creation_timestamp < ?
    ORDER BY m.creation_timestamp DESC, m.position DESC, m.item DESC LIMIT ${PAGE_SIZE}`)
  const event = db.prepare('SELECT schema_version, data FROM events WHERE position = ?')
  type Key = { creation_timestamp: number, position: number, item: number }
  return (sensorId: string, timestamp: number | undefined, direction: Direction) => {
    const keys = (timestamp === undefined
      ? newest.all(sensorId).reverse()
      : direction === 'next' ? next.all(sensorId, timestamp) : previous.all(sensorId, timestamp).reverse()) as Key[]
    const batches = new Map<number, Measurement[]>()
    return keys.map(({ creation_timestamp, position, item }) => {
      let batch = batches.get(position)
      if (batch === undefined) {
        const row = event.get(position) as { schema_version: number, data: string }
        batch = (decodeData('MeasurementsRecorded', row.schema_version, row.data, `sensor-${sensorId}`) as { measurements: Measurement[] }).measurements
        batches.set(position, batch)
      }
      const measurement = batch[item]!
      return { revision: measurement.revision, creation_timestamp, measurement: measurement.value as JsonObject }
    })
  }
}

interface LatestConfiguration { sensor_id: string, revision: number, configuration: string }

export function sensorQueries (db: Db) {
  const sensor = db.prepare('SELECT sensor_id, network_id, sensor_name, revision, state FROM sensors WHERE sensor_id = ?')
  const networkOf = db.prepare('SELECT network_id FROM sensors WHERE sensor_id = ?').pluck()
  const nameOwner = db.prepare('SELECT sensor_id FROM sensors WHERE network_id = ? AND sensor_name = ?').pluck()
  const sensorsOf = db.prepare(`SELECT s.sensor_id, s.sensor_name, s.revision, c.acknowledged_at, c.success
    FROM sensors s JOIN sensor_configurations c ON c.sensor_id = s.sensor_id AND c.revision = s.revision
    WHERE s.network_id = ? ORDER BY s.registered_at, s.sensor_id`)
  const configuration = db.prepare(`SELECT revision, configuration, revised_at, acknowledged_at, success
    FROM sensor_configurations WHERE sensor_id = ? AND revision = ?`)
  const latestConfigurations = db.prepare(`SELECT c.sensor_id, c.revision, c.configuration FROM sensors s
    JOIN sensor_configurations c ON c.sensor_id = s.sensor_id AND c.revision = s.revision`)
  const latestConfiguration = db.prepare(`SELECT c.sensor_id, c.revision, c.configuration FROM sensors s
    JOIN sensor_configurations c ON c.sensor_id = s.sensor_id AND c.revision = s.revision WHERE s.sensor_id = ?`)
  const measurements = measurementPages(db)
  const logs = pageQuery(db, 'log_messages', 'revision, creation_timestamp, severity, subject, details')
  const aggregates = db.prepare(`SELECT sensor_id AS sensor_identifier, severity, subject, min_revision, max_revision,
    min_creation_timestamp, max_creation_timestamp, count FROM log_aggregates WHERE sensor_id = ?
    ORDER BY max_creation_timestamp, severity, subject`)
  const buckets = db.prepare(`SELECT b.sensor_id, b.bucket_start, b.count FROM measurement_buckets b
    JOIN sensors s ON s.sensor_id = b.sensor_id WHERE s.network_id = ? AND b.bucket_start >= ? ORDER BY b.sensor_id, b.bucket_start`)

  return {
    sensor (id: string): SensorRow | undefined {
      const row = sensor.get(id) as (Omit<SensorRow, 'state'> & { state: string }) | undefined
      return row === undefined ? undefined : { ...row, state: JSON.parse(row.state) as SensorState }
    },
    networkOf: (sensorId: string) => networkOf.get(sensorId) as string | undefined,
    nameTaken: (networkId: string, name: string, exceptSensorId?: string) => {
      const owner = nameOwner.get(networkId, name) as string | undefined
      return owner !== undefined && owner !== exceptSensorId
    },
    sensorsOf: (networkId: string) => sensorsOf.all(networkId) as Array<{ sensor_id: string, sensor_name: string, revision: number, acknowledged_at: number | null, success: number | null }>,
    configuration: (sensorId: string, revision: number) => configuration.get(sensorId, revision) as
      { revision: number, configuration: string, revised_at: string, acknowledged_at: number | null, success: number | null } | undefined,
    latestConfigurations: () => latestConfigurations.all() as LatestConfiguration[],
    latestConfiguration: (sensorId: string) => latestConfiguration.get(sensorId) as LatestConfiguration | undefined,
    measurements,
    logs: (sensorId: string, timestamp: number | undefined, direction: Direction) =>
      logs(sensorId, timestamp, direction).map(row => ({
        revision: row.revision as number,
        creation_timestamp: row.creation_timestamp as number,
        severity: row.severity as 'debug' | 'info' | 'warning' | 'error',
        subject: row.subject as string,
        details: row.details as string | null
      })),
    aggregates: (sensorId: string) => aggregates.all(sensorId) as Array<{
      sensor_identifier: string, severity: 'warning' | 'error', subject: string, min_revision: number, max_revision: number,
      min_creation_timestamp: number, max_creation_timestamp: number, count: number
    }>,
    bucketCounts: (networkId: string, fromBucket: number) => buckets.all(networkId, fromBucket) as Array<{ sensor_id: string, bucket_start: number, count: number }>
  }
}
export type SensorQueries = ReturnType<typeof sensorQueries>
