import type { EventType } from '../../events/index.ts'
import type { Db } from '../store/database.ts'
import { decodeRow, type EventRow, type RecordedEvent } from '../store/recorded-event.ts'
import { SEEN_TYPES } from './registry.ts'

/**
 * How a kind of device's state is folded from its own stream, declared by its capability with
 * the evolve functions its live projections use: `GET /api/v1/devices/<id>/state?at=` answers
 * with `view(fold(events up to then))`, so the past and the live API cannot disagree.
 */
export interface DeviceStateDeclaration<S = any> {
  readonly kind: string
  /** Types of which every event changes the state (registration, decisions): all are folded. */
  readonly folds: readonly EventType[]
  /** Types of which only the latest matters (a reading, a report): only that one is read. */
  readonly latest: readonly EventType[]
  initial(): S
  evolve(state: S, event: RecordedEvent): S
  view(state: S): unknown
}

/** A moment of the log: up to a position, or up to an instant (inclusive). */
export type Moment = { position: number } | { at: string }

const PRESENCE: readonly EventType[] = ['DeviceConnected', 'DeviceDisconnected']

export interface DeviceStateAsOf {
  /** The position and recorded_at of the last event folded (null: none yet), presence, and the view. */
  position: number | null
  recorded_at: string | null
  online: boolean
  last_seen: string | null
  state: unknown
}

/**
 * Reads one stream, never the log: every event of the folded types up to the moment, and the
 * latest of each other type (through the events_by_stream_type index, newest first).
 */
export function stateQueries (db: Db) {
  const bound = (moment: Moment) => 'position' in moment
    ? { clause: 'position <= @bound', bound: moment.position }
    : { clause: 'recorded_at <= @bound', bound: Date.parse(moment.at) }
  const placeholders = (types: readonly string[]) => types.map((_, i) => `@t${i}`).join(', ')
  const typeParams = (types: readonly string[]) => Object.fromEntries(types.map((type, i) => [`t${i}`, type]))
  const cache = new Map<string, ReturnType<Db['prepare']>>()
  const statement = (sql: string) => {
    let prepared = cache.get(sql)
    if (prepared === undefined) cache.set(sql, prepared = db.prepare(sql))
    return prepared
  }
  const all = (stream: string, types: readonly string[], moment: Moment): RecordedEvent[] => {
    if (types.length === 0) return []
    const { clause, bound: value } = bound(moment)
    return (statement(`SELECT * FROM event_rows WHERE stream_id = @stream AND type IN (${placeholders(types)}) AND ${clause} ORDER BY position`)
      .all({ stream, bound: value, ...typeParams(types) }) as EventRow[]).map(decodeRow)
  }
  /** The latest event of any of `types`: one index seek per type (an IN list would read them all to sort). */
  const latest = (stream: string, types: readonly string[], moment: Moment): RecordedEvent | undefined => {
    const { clause, bound: value } = bound(moment)
    const one = statement(`SELECT * FROM event_rows WHERE stream_id = @stream AND type = @type AND ${clause} ORDER BY position DESC LIMIT 1`)
    let newest: EventRow | undefined
    for (const type of types) {
      const row = one.get({ stream, type, bound: value }) as EventRow | undefined
      if (row !== undefined && (newest === undefined || row.position > newest.position)) newest = row
    }
    return newest === undefined ? undefined : decodeRow(newest)
  }
  const range = (stream: string, after: Moment, until: Moment, limit: number): RecordedEvent[] => {
    const from = bound(after)
    const to = bound(until)
    return (statement(`SELECT * FROM event_rows WHERE stream_id = @stream AND NOT (${from.clause.replace('@bound', '@from')}) AND ${to.clause.replace('@bound', '@to')} ORDER BY position LIMIT @limit`)
      .all({ stream, from: from.bound, to: to.bound, limit }) as EventRow[]).map(decodeRow)
  }

  /** The events that make a device's state at a moment, in position order. */
  function eventsFor (declaration: DeviceStateDeclaration, stream: string, moment: Moment): RecordedEvent[] {
    const events = all(stream, declaration.folds, moment)
    for (const type of declaration.latest) {
      const event = latest(stream, [type], moment)
      if (event !== undefined) events.push(event)
    }
    return events.sort((a, b) => a.position - b.position)
  }

  return {
    stateAt (declaration: DeviceStateDeclaration, stream: string, moment: Moment): DeviceStateAsOf {
      const events = eventsFor(declaration, stream, moment)
      const state = events.reduce((state, event) => declaration.evolve(state, event), declaration.initial())
      const connection = latest(stream, PRESENCE, moment)
      const seen = latest(stream, SEEN_TYPES, moment)
      // The last event of the stream at that moment that it folded or that saw the device: the state is as of it.
      const folded = events.at(-1)
      const last = folded === undefined || (seen !== undefined && seen.position > folded.position) ? seen : folded
      return {
        position: last?.position ?? null,
        recorded_at: last?.recorded_at ?? null,
        online: connection?.type === 'DeviceConnected',
        last_seen: seen?.recorded_at ?? null,
        state: declaration.view(state)
      }
    },

    /** Each event of the stream after `from` up to `to`, with the state right after it. */
    changes (declaration: DeviceStateDeclaration, stream: string, from: Moment, to: Moment, limit: number) {
      let state = eventsFor(declaration, stream, from).reduce((state, event) => declaration.evolve(state, event), declaration.initial())
      const folded = new Set([...declaration.folds, ...declaration.latest])
      return range(stream, from, to, limit).map(event => {
        if (folded.has(event.type as EventType)) state = declaration.evolve(state, event)
        return { position: event.position, recorded_at: event.recorded_at, type: event.type, state: declaration.view(state) }
      })
    }
  }
}
export type StateQueries = ReturnType<typeof stateQueries>
