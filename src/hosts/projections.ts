import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'

/** The points of the dashboard's history charts, as each MetricsReported was recorded. */
export const hostMetricsProjection: Projection = {
  name: 'host_metrics',
  version: 1,
  handles: ['MetricsReported'],
  tables: ['host_metrics'],
  ddl: `CREATE TABLE IF NOT EXISTS host_metrics (
      position INTEGER PRIMARY KEY, device_id TEXT NOT NULL, recorded_at TEXT NOT NULL, cpu_usage REAL NOT NULL,
      memory_usage REAL NOT NULL, memory_total REAL NOT NULL, network_rx REAL NOT NULL, network_tx REAL NOT NULL
    ) STRICT;
    CREATE INDEX IF NOT EXISTS host_metrics_by_device ON host_metrics (device_id, position);`,
  prepare (db) {
    const insert = db.prepare(`INSERT INTO host_metrics (position, device_id, recorded_at, cpu_usage, memory_usage, memory_total, network_rx, network_tx)
      VALUES (@position, @device_identifier, @recorded_at, @cpu_usage, @memory_usage, @memory_total, @network_rx, @network_tx)`)
    return event => {
      if (event.type === 'MetricsReported') insert.run({ position: event.position, recorded_at: event.recorded_at, ...event.data })
    }
  }
}

export interface MetricsPoint {
  recorded_at: string
  cpu_usage: number
  memory_usage: number
  memory_total: number
  network_rx: number
  network_tx: number
}

export function hostQueries (db: Db) {
  const latest = db.prepare(`SELECT recorded_at, cpu_usage, memory_usage, memory_total, network_rx, network_tx
    FROM host_metrics WHERE device_id = ? ORDER BY position DESC LIMIT ?`)
  return {
    /** The newest `limit` points, oldest first. */
    history: (deviceId: string, limit: number) => (latest.all(deviceId, limit) as MetricsPoint[]).reverse()
  }
}
export type HostQueries = ReturnType<typeof hostQueries>
