import { eventDefinitions, type DomainEvent, type Metadata } from '../../events/index.ts'
import type { Clock } from '../clock.ts'
import { InvalidEvent, StreamVersionConflict } from '../errors.ts'
import type { Db } from './database.ts'
import { Projections, resetChangedProjections, type Projection } from './projection.ts'
import { chainHash, decodeRow, GENESIS_HASH, type EventRow, type RecordedEvent } from './recorded-event.ts'

/** `no_stream`: the stream must not exist yet; a number: its current version must be exactly that. */
export type ExpectedVersion = number | 'any' | 'no_stream'

export interface AppendOptions {
  expectedVersion?: ExpectedVersion
  metadata: Metadata
  /**
   * The events' data was built from a message just parsed with the same zod schemas (a device
   * report on the hot path), so parsing it again would only cost. Everything else is checked.
   */
  validated?: boolean
}

/** What a unit of work sees: reads and appends inside the group's transaction. */
export interface Transaction {
  readonly db: Db
  /** The clock when the group started: every event of the group is recorded at this time. */
  readonly now: number
  append(streamId: string, events: readonly DomainEvent[], options: AppendOptions): RecordedEvent[]
  streamVersion(streamId: string): number
}

export type Work<T> = (tx: Transaction) => T
export type CommitListener = (events: readonly RecordedEvent[]) => void

interface Pending {
  work: Work<unknown>
  resolve(value: unknown): void
  reject(error: unknown): void
}

export interface EventFilter {
  after?: number
  before?: number
  limit?: number
  stream?: string
  type?: string
  /** ISO 8601 bounds on recorded_at, inclusive. */
  since?: string
  until?: string
}

/**
 * The append-only log. Units of work queue up and are run one after the other inside a single
 * transaction, flushed on the next turn of the event loop (group commit); each gets its own
 * savepoint, so one that throws is rolled back alone. A unit's promise settles only after the
 * COMMIT, which is what makes an acknowledgement durable.
 */
export class EventStore {
  private queue: Pending[] = []
  private flushScheduled = false
  private lastPosition: number
  private lastHash: string
  private readonly listeners = new Set<CommitListener>()
  private readonly projections: Projections
  private readonly insertEvent
  private readonly selectStreamVersion
  private readonly runGroup
  /** Versions of the streams appended to by the running group, and of committed streams. */
  private readonly groupVersions = new Map<string, number>()
  private readonly streamVersions = new Map<string, number>()
  private readonly transaction: Transaction
  private closed = false
  private groupEvents: RecordedEvent[] = []
  private groupNow = 0
  private groupRecordedAt = ''

  constructor (
    readonly db: Db,
    projections: readonly Projection[],
    private readonly clock: Clock,
    private readonly maxGroup = 1000
  ) {
    const changed = resetChangedProjections(db, projections)
    this.projections = new Projections(db, projections)
    const head = db.prepare('SELECT position, hash FROM events ORDER BY position DESC LIMIT 1').get() as
      { position: number, hash: string } | undefined
    this.lastPosition = head?.position ?? 0
    this.lastHash = head?.hash ?? GENESIS_HASH
    this.insertEvent = db.prepare(`INSERT INTO events
      (position, stream_id, stream_version, type, schema_version, recorded_at, data, metadata, hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.selectStreamVersion = db.prepare('SELECT max(stream_version) AS v FROM events WHERE stream_id = ?').pluck()
    const store = this
    this.transaction = {
      db,
      get now () { return store.groupNow },
      append: (streamId, events, options) => this.appendInTransaction(streamId, events, options),
      streamVersion: streamId => this.streamVersion(streamId)
    }
    this.runGroup = db.transaction(this.runUnits.bind(this))
    if (changed.length > 0) rebuildProjections(db, changed)
  }


  /** Run `work` in the next group transaction; resolves with its result once committed. */
  transact<T> (work: Work<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('event store is closed'))
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  append (streamId: string, events: readonly DomainEvent[], options: AppendOptions): Promise<RecordedEvent[]> {
    return this.transact(tx => tx.append(streamId, events, options))
  }

  /** Commit everything queued now, in groups of at most `maxGroup` units. */
  flush (): void {
    this.flushScheduled = false
    while (this.queue.length > 0) {
      const group = this.queue.splice(0, this.maxGroup)
      this.commitGroup(group)
    }
  }

  /**
   * Runs the group's units in one transaction, without a savepoint each (they cost more than
   * the work): if a unit throws, the whole transaction is rolled back, that unit is rejected,
   * and the group runs again without it. Units are pure reads and appends, so rerunning is safe.
   */
  private commitGroup (group: Pending[]): void {
    this.groupNow = this.clock.now()
    this.groupRecordedAt = new Date(this.groupNow).toISOString()
    let remaining = group
    while (remaining.length > 0) {
      const position = this.lastPosition
      const hash = this.lastHash
      this.groupEvents = []
      this.groupVersions.clear()
      const values: unknown[] = []
      let failed: { index: number, error: unknown } | undefined
      try {
        this.runGroup.immediate(remaining, values, (index: number, error: unknown) => { failed = { index, error } })
      } catch (error) {
        this.lastPosition = position
        this.lastHash = hash
        if (failed === undefined) {
          // The COMMIT itself failed (disk full, I/O error): nothing of the group is durable.
          for (const pending of remaining) pending.reject(error)
          return
        }
        remaining[failed.index]!.reject(failed.error)
        remaining = remaining.filter((_, i) => i !== failed!.index)
        continue
      }
      for (const [stream, version] of this.groupVersions) this.streamVersions.set(stream, version)
      const committed = this.groupEvents
      this.groupEvents = []
      remaining.forEach((pending, i) => pending.resolve(values[i]))
      if (committed.length > 0) {
        for (const listener of this.listeners) {
          try { listener(committed) } catch { /* a listener's failure must not undo a commit */ }
        }
      }
      return
    }
  }

  private runUnits (group: Pending[], values: unknown[], onFailure: (index: number, error: unknown) => void): void {
    for (let i = 0; i < group.length; i++) {
      try {
        values.push(group[i]!.work(this.transaction))
      } catch (error) {
        onFailure(i, error)
        throw error
      }
    }
  }

  /** Stream versions: this group's appends, then the committed ones, then the table. */
  private streamVersion (streamId: string): number {
    const staged = this.groupVersions.get(streamId) ?? this.streamVersions.get(streamId)
    if (staged !== undefined) return staged
    const version = (this.selectStreamVersion.get(streamId) as number | null) ?? -1
    if (version >= 0) this.streamVersions.set(streamId, version)
    return version
  }

  private appendInTransaction (streamId: string, events: readonly DomainEvent[], options: AppendOptions): RecordedEvent[] {
    const expected = options.expectedVersion ?? 'any'
    let version = this.streamVersion(streamId)
    if (expected !== 'any' && (expected === 'no_stream' ? version !== -1 : version !== expected)) {
      throw new StreamVersionConflict(streamId, String(expected), version)
    }
    const recordedAt = this.groupRecordedAt
    const metadata = JSON.stringify(options.metadata)
    const recorded: RecordedEvent[] = []
    for (const event of events) {
      const definition = eventDefinitions[event.type]
      if (options.validated !== true) {
        const valid = definition.schema.safeParse(event.data)
        if (!valid.success) throw new InvalidEvent(event.type, valid.error.message)
      }
      version += 1
      const row = {
        position: this.lastPosition + 1,
        stream_id: streamId,
        stream_version: version,
        type: event.type,
        schema_version: definition.version,
        recorded_at: recordedAt,
        data: JSON.stringify(event.data),
        metadata
      }
      const hash = chainHash(this.lastHash, row)
      this.insertEvent.run(row.position, streamId, version, event.type, definition.version, recordedAt, row.data, metadata, hash)
      this.lastPosition = row.position
      this.lastHash = hash
      const recordedEvent = {
        ...event,
        position: row.position,
        stream_id: streamId,
        stream_version: version,
        schema_version: definition.version,
        recorded_at: recordedAt,
        metadata: options.metadata,
        hash
      } as RecordedEvent
      this.projections.apply(recordedEvent)
      recorded.push(recordedEvent)
      this.groupEvents.push(recordedEvent)
    }
    this.groupVersions.set(streamId, version)
    return recorded
  }

  /** Called with every group of events right after it commits. Returns an unsubscribe. */
  subscribe (listener: CommitListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  get headPosition (): number { return this.lastPosition }

  read (filter: EventFilter = {}): RecordedEvent[] {
    return readEvents(this.db, filter)
  }

  /** Flush what is queued, then close the database. Later transacts are refused. */
  close (): void {
    if (this.closed) return
    this.flush()
    this.closed = true
    this.listeners.clear()
    this.db.close()
  }
}

export function readEvents (db: Db, filter: EventFilter = {}): RecordedEvent[] {
  const { sql, params } = eventQuery(filter)
  return (db.prepare(sql).all(params) as EventRow[]).map(decodeRow)
}

/** The SELECT for a filter, in position order; shared by reads and `devicelog export`. */
export function eventQuery (filter: EventFilter): { sql: string, params: Record<string, unknown> } {
  const where: string[] = ['position > @after']
  const params: Record<string, unknown> = { after: filter.after ?? 0, limit: filter.limit ?? -1 }
  const add = (key: keyof EventFilter, clause: string) => {
    if (filter[key] === undefined) return
    where.push(clause)
    params[key] = filter[key]
  }
  add('before', 'position < @before')
  add('stream', 'stream_id = @stream')
  add('type', 'type = @type')
  add('since', 'recorded_at >= @since')
  add('until', 'recorded_at <= @until')
  return { sql: `SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY position LIMIT @limit`, params }
}

/** The whole log in position order, a page of rows at a time (replays never hold it all). */
export function * eventPages (db: Db, pageSize = 5000): Generator<EventRow[]> {
  const page = db.prepare('SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?')
  for (let after = 0; ;) {
    const rows = page.all(after, pageSize) as EventRow[]
    if (rows.length === 0) return
    yield rows
    after = rows[rows.length - 1]!.position
  }
}

/** Refill projections from the whole log, inside one transaction. */
export function rebuildProjections (db: Db, projections: readonly Projection[]): void {
  const runner = new Projections(db, projections)
  db.transaction(() => {
    for (const rows of eventPages(db)) for (const row of rows) runner.apply(decodeRow(row))
  }).immediate()
}
