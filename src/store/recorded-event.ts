import { createHash } from 'node:crypto'
import { type DomainEvent, type Metadata, upcasters } from '../../events/index.ts'

/** An event as the log holds it: the domain event plus where, when and by whom. */
export type RecordedEvent<E extends DomainEvent = DomainEvent> = E & {
  position: number
  stream_id: string
  stream_version: number
  schema_version: number
  recorded_at: string
  metadata: Metadata
  hash: string
}

/** A row of the events table, exactly as stored: data and metadata are the hashed JSON text. */
export interface EventRow {
  position: number
  stream_id: string
  stream_version: number
  type: string
  schema_version: number
  recorded_at: string
  data: string
  metadata: string
  hash: string
}

export const GENESIS_HASH = '0'.repeat(64)

/** Chains a row to its predecessor: any edit or removal of a past row changes every later hash. */
export function chainHash (previousHash: string, row: Omit<EventRow, 'hash'>): string {
  return createHash('sha256')
    .update(JSON.stringify([previousHash, row.position, row.stream_id, row.stream_version, row.type,
      row.schema_version, row.recorded_at, row.data, row.metadata]))
    .digest('hex')
}

/** A stored row back to an event, upcast to the current schema version. */
export function decodeRow (row: EventRow): RecordedEvent {
  let data: unknown = JSON.parse(row.data)
  let version = row.schema_version
  for (let upcast = upcasters[`${row.type}@${version}`]; upcast; upcast = upcasters[`${row.type}@${version}`]) {
    data = upcast(data)
    version += 1
  }
  return {
    type: row.type,
    data,
    position: row.position,
    stream_id: row.stream_id,
    stream_version: row.stream_version,
    schema_version: row.schema_version,
    recorded_at: row.recorded_at,
    metadata: JSON.parse(row.metadata) as Metadata,
    hash: row.hash
  } as RecordedEvent
}
