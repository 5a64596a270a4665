import { type DomainEvent, eventDefinitions, type EventType, type Metadata, upcasters } from '../../events/index.ts'
import { isoTime } from './chain.ts'

/** An event as the log holds it: the domain event plus where, when and by whom. */
export type RecordedEvent<E extends DomainEvent = DomainEvent> = E & {
  position: number
  stream_id: string
  stream_version: number
  schema_version: number
  /** ISO 8601, UTC, milliseconds. */
  recorded_at: string
  metadata: Metadata
  /** SHA-256 of the previous hash and this row, hex. */
  hash: string
}

/** A row of `event_rows`: names resolved, time in ms, hash raw; data and metadata are the hashed JSON text. */
export interface EventRow {
  position: number
  stream_id: string
  stream_version: number
  type: string
  schema_version: number
  recorded_at: number
  data: string
  metadata: string
  hash: Buffer
}

export { chainHash, GENESIS_HASH, isoTime } from './chain.ts'

const streamKeyOf = (type: string): string | undefined => eventDefinitions[type as EventType]?.streamKey
const idOfStream = (streamId: string): string => streamId.slice(streamId.indexOf('-') + 1)

/** `{"<key>":"` for each stream key, made once. */
const keyHeads = new Map<string, string>()

/**
 * Data as the log stores it: JSON, without the field that repeats the stream's id. Compared in
 * place, not by building the repeated field's text (on the hot path that doubled the cost of the
 * JSON.stringify). An id that JSON escapes does not match its escaped text, and stays.
 */
export function encodeData (type: string, streamId: string, data: unknown): string {
  const text = JSON.stringify(data)
  const key = streamKeyOf(type)
  if (key === undefined) return text
  let head = keyHeads.get(key)
  if (head === undefined) keyHeads.set(key, head = `{"${key}":"`)
  const id = idOfStream(streamId)
  const idEnd = head.length + id.length
  const repeated = text.startsWith(head) && text.charCodeAt(idEnd) === 0x22 && text.charCodeAt(idEnd + 1) === 0x2c && text.startsWith(id, head.length)
  return repeated ? '{' + text.slice(idEnd + 2) : text
}

/** Data as stored, its stream's id given back, upcast to the current schema version of its type. */
export function decodeData (type: string, schemaVersion: number, text: string, streamId: string): unknown {
  let data: unknown = JSON.parse(text)
  const key = streamKeyOf(type)
  if (key !== undefined && !Object.hasOwn(data as object, key)) (data as Record<string, unknown>)[key] = idOfStream(streamId)
  for (let upcast = upcasters[`${type}@${schemaVersion}`]; upcast; upcast = upcasters[`${type}@${schemaVersion}`]) {
    data = upcast(data)
    schemaVersion += 1
  }
  return data
}

/** A stored row back to an event, upcast to the current schema version. */
export function decodeRow (row: EventRow): RecordedEvent {
  return {
    type: row.type,
    data: decodeData(row.type, row.schema_version, row.data, row.stream_id),
    position: row.position,
    stream_id: row.stream_id,
    stream_version: row.stream_version,
    schema_version: row.schema_version,
    recorded_at: isoTime(row.recorded_at),
    metadata: JSON.parse(row.metadata) as Metadata,
    hash: row.hash.toString('hex')
  } as RecordedEvent
}
