import type { Db } from '../store/database.ts'
import { registrationReader, registrationTypes, type DeviceKindDeclaration } from '../devices/kind.ts'
import type { Projection } from '../store/projection.ts'
import { decodeRow, type EventRow } from '../store/recorded-event.ts'

/** Which network each stream belongs to: members of a network may read its streams' events. */
export function streamAccessProjection (kinds: readonly DeviceKindDeclaration[]): Projection {
  return {
    name: 'stream_access',
    version: 4,
    handles: ['NetworkCreated', ...registrationTypes(kinds)],
    tables: ['stream_access'],
    ddl: `CREATE TABLE IF NOT EXISTS stream_access (stream_id TEXT PRIMARY KEY, network_id TEXT NOT NULL) STRICT;
      CREATE INDEX IF NOT EXISTS stream_access_by_network ON stream_access (network_id);`,
    prepare (db) {
      const upsert = db.prepare(`INSERT INTO stream_access (stream_id, network_id) VALUES (?, ?)
        ON CONFLICT (stream_id) DO UPDATE SET network_id = excluded.network_id`)
      const registration = registrationReader(kinds)
      return event => {
        if (event.type === 'NetworkCreated') return upsert.run(event.stream_id, event.data.network_identifier)
        // A removed device's stream stays readable by its network: its history is still theirs.
        const change = registration(event)
        if (change !== undefined && change.change !== 'removed') upsert.run(event.stream_id, change.network)
      }
    }
  }
}

export interface AuditFilter { after: number, before?: number, limit: number, stream?: string, type?: string, order: 'asc' | 'desc' }

/** Events the user may see: their own user stream, and every stream of their networks. */
export function auditQueries (db: Db) {
  const visible = `(e.stream_id = @own OR e.stream_id IN (SELECT a.stream_id FROM stream_access a
    JOIN network_members m ON m.network_id = a.network_id WHERE m.user_id = @user))`
  const statements = new Map<string, ReturnType<Db['prepare']>>()
  const statementFor = (filter: AuditFilter) => {
    const key = `${filter.stream !== undefined}:${filter.type !== undefined}:${filter.before !== undefined}:${filter.order}`
    let statement = statements.get(key)
    if (statement === undefined) {
      statement = db.prepare(`SELECT e.* FROM event_rows e WHERE e.position > @after AND ${visible}
        ${filter.before !== undefined ? 'AND e.position < @before' : ''}
        ${filter.stream !== undefined ? 'AND e.stream_id = @stream' : ''} ${filter.type !== undefined ? 'AND e.type = @type' : ''}
        ORDER BY e.position ${filter.order === 'desc' ? 'DESC' : 'ASC'} LIMIT @limit`)
      statements.set(key, statement)
    }
    return statement
  }
  return {
    eventsFor (userId: string, filter: AuditFilter) {
      const { order: _, ...params } = filter
      const rows = statementFor(filter).all({ own: `user-${userId}`, user: userId, ...params }) as EventRow[]
      return rows.map(decodeRow)
    }
  }
}
