import type { Db } from '../store/database.ts'
import type { Projection } from '../store/projection.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveCharger, initialChargerState, type ChargerEvent, type ChargerState } from './decider.ts'

/** The charger-widget pairs with each charger's decider state (latest status, last reading). */
export const chargersProjection: Projection = {
  name: 'chargers',
  version: 1,
  handles: ['ChargerRegistered', 'ChargerRemoved', 'StateOfChargeReported', 'ChargingStatusChanged'],
  tables: ['chargers'],
  ddl: `CREATE TABLE IF NOT EXISTS chargers (
      charger_id TEXT PRIMARY KEY, widget_id TEXT NOT NULL UNIQUE, network_id TEXT NOT NULL, token_sha256 TEXT NOT NULL,
      position INTEGER NOT NULL, last_soc REAL, state TEXT NOT NULL
    ) STRICT;`,
  prepare (db) {
    const selectState = db.prepare('SELECT state FROM chargers WHERE charger_id = ?').pluck()
    const insert = db.prepare(`INSERT INTO chargers (charger_id, widget_id, network_id, token_sha256, position, state)
      VALUES (@charger_id, @widget_id, @network_identifier, @token_sha256, @position, @state)`)
    const update = db.prepare('UPDATE chargers SET state = ?, last_soc = coalesce(?, last_soc) WHERE charger_id = ?')
    const remove = db.prepare('DELETE FROM chargers WHERE charger_id = ?')
    return recorded => {
      const event = recorded as RecordedEvent & ChargerEvent
      switch (event.type) {
        case 'ChargerRegistered':
          insert.run({ ...event.data, position: recorded.position, state: JSON.stringify(evolveCharger(initialChargerState(), event)) })
          return
        case 'ChargerRemoved':
          remove.run(event.data.charger_id)
          return
        case 'StateOfChargeReported':
        case 'ChargingStatusChanged': {
          const stored = selectState.get(event.data.charger_id) as string | undefined
          if (stored === undefined) return
          const soc = event.type === 'StateOfChargeReported' ? event.data.soc : null
          update.run(JSON.stringify(evolveCharger(JSON.parse(stored) as ChargerState, event)), soc, event.data.charger_id)
        }
      }
    }
  }
}

export interface ChargerRow {
  charger_id: string
  widget_id: string
  network_id: string
  token_sha256: string
  last_soc: number | null
  state: Extract<ChargerState, { status: 'registered' }>
}

export function chargerQueries (db: Db) {
  const columns = 'charger_id, widget_id, network_id, token_sha256, last_soc, state'
  const byCharger = db.prepare(`SELECT ${columns} FROM chargers WHERE charger_id = ?`)
  const byWidget = db.prepare(`SELECT ${columns} FROM chargers WHERE widget_id = ?`)
  const ofUser = db.prepare(`SELECT ${columns} FROM chargers
    WHERE network_id IN (SELECT network_id FROM network_members WHERE user_id = ?) ORDER BY position`)
  const decode = (row: unknown): ChargerRow | undefined =>
    row === undefined ? undefined : { ...(row as ChargerRow), state: JSON.parse((row as { state: string }).state) }
  return {
    charger: (id: string) => decode(byCharger.get(id)),
    widget: (id: string) => decode(byWidget.get(id)),
    chargersOf: (userId: string) => ofUser.all(userId).map(row => decode(row)!)
  }
}
export type ChargerQueries = ReturnType<typeof chargerQueries>
