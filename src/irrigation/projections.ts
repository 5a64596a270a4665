import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import { evolveZone, initialZoneState, type ZoneEvent, type ZoneState } from './decider.ts'

/** Every zone with its decider state, and each zone's history: one entry per ended run. */
export const zonesProjection: Projection = {
  name: 'zones',
  version: 2, // 2: a mismatch outlives a mode change while the valve still disagrees
  handles: ['ZoneRegistered', 'ManualModeStarted', 'TimerModeStarted', 'ZoneRunEnded', 'ValveStateReported', 'ValveMismatchDetected'],
  tables: ['zones', 'zone_history'],
  ddl: `
    CREATE TABLE IF NOT EXISTS zones (
      zone_id TEXT PRIMARY KEY, network_id TEXT NOT NULL, zone_name TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL
    ) STRICT;
    CREATE TABLE IF NOT EXISTS zone_history (
      position INTEGER PRIMARY KEY, zone_id TEXT NOT NULL, mode TEXT NOT NULL, timestamp TEXT NOT NULL, since TEXT NOT NULL, until TEXT
    ) STRICT;
    CREATE INDEX IF NOT EXISTS zone_history_by_zone ON zone_history (zone_id, position);`,
  prepare (db) {
    const selectState = db.prepare('SELECT state FROM zones WHERE zone_id = ?').pluck()
    const insertZone = db.prepare('INSERT INTO zones (zone_id, network_id, zone_name, position, state) VALUES (?, ?, ?, ?, ?)')
    const updateState = db.prepare('UPDATE zones SET state = ? WHERE zone_id = ?')
    const insertHistory = db.prepare('INSERT INTO zone_history (position, zone_id, mode, timestamp, since, until) VALUES (?, ?, ?, ?, ?, ?)')
    return recorded => {
      const event = recorded as unknown as ZoneEvent
      const zoneId = event.data.zone_identifier
      if (event.type === 'ZoneRegistered') {
        insertZone.run(zoneId, event.data.network_identifier, event.data.zone_name, recorded.position, JSON.stringify(evolveZone(initialZoneState(), event)))
        return
      }
      const stored = selectState.get(zoneId) as string | undefined
      if (stored === undefined) return
      updateState.run(JSON.stringify(evolveZone(JSON.parse(stored) as ZoneState, event)), zoneId)
      if (event.type === 'ZoneRunEnded') {
        insertHistory.run(recorded.position, zoneId, event.data.mode, event.data.ended_at, event.data.since, event.data.to)
      }
    }
  }
}

export interface ZoneRow {
  zone_id: string
  network_id: string
  zone_name: string
  state: Extract<ZoneState, { status: 'registered' }>
}

export interface HistoryRow { mode: string, timestamp: string, since: string, to: string | null }

type StoredZone = Omit<ZoneRow, 'state'> & { state: string }

export function zoneQueries (db: Db) {
  const columns = 'zone_id, network_id, zone_name, state'
  const byId = db.prepare(`SELECT ${columns} FROM zones WHERE zone_id = ?`)
  const byName = db.prepare(`SELECT ${columns} FROM zones WHERE zone_name = ? ORDER BY position LIMIT 1`)
  const first = db.prepare(`SELECT ${columns} FROM zones ORDER BY position LIMIT 1`)
  const all = db.prepare(`SELECT ${columns} FROM zones ORDER BY position`)
  const ofUser = db.prepare(`SELECT ${columns} FROM zones WHERE network_id IN (SELECT network_id FROM network_members WHERE user_id = ?) ORDER BY position`)
  const history = db.prepare('SELECT mode, timestamp, since, until AS "to" FROM zone_history WHERE zone_id = ? ORDER BY position DESC LIMIT ?')
  const decode = (row: unknown): ZoneRow | undefined => {
    if (row === undefined) return undefined
    const stored = row as StoredZone
    return { ...stored, state: JSON.parse(stored.state) }
  }
  return {
    zone: (zoneId: string) => decode(byId.get(zoneId)),
    /** By identifier, else by name (IRRIGATION_ZONE may name either). */
    find: (key: string) => decode(byId.get(key)) ?? decode(byName.get(key)),
    first: () => decode(first.get()),
    all: () => all.all().map(row => decode(row)!),
    zonesOf: (userId: string) => ofUser.all(userId).map(row => decode(row)!),
    /** Newest first. */
    history: (zoneId: string, limit: number) => history.all(zoneId, limit) as HistoryRow[]
  }
}
export type ZoneQueries = ReturnType<typeof zoneQueries>
