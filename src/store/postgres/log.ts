import pg from 'pg'
import { type DomainEvent, eventDefinitions } from '../../../events/index.ts'
import type { Clock } from '../../clock.ts'
import { InvalidEvent, StreamVersionConflict } from '../../errors.ts'
import { chainHash, chainHashHex, GENESIS_HASH, isoTime } from '../chain.ts'
import type { AppendOptions, CommitListener, EventFilter } from '../event-store.ts'
import type { VerifyResult } from '../verify.ts'
import { APPEND_LOCK, CHANNEL, EVENT_COLUMNS, insertEvents, openPostgresSchema, toEventRow, type PostgresRow } from './schema.ts'
import { decodeRow, encodeData, type EventRow, type RecordedEvent } from '../recorded-event.ts'

/**
 * The event log in PostgreSQL, for several nodes on one database: the second implementation of
 * the log's contract (test/store-contract.test.ts runs one suite against both).
 *
 * - Appends from every node are serialized by one transaction-scoped advisory lock: under it a
 *   group reads the head (position and hash), checks each unit's expected stream version, and
 *   inserts its rows with positions that follow the head. Positions therefore commit in order
 *   and without gaps (a bigserial's would not: they are taken before, and commit out of, order),
 *   and the hash chain stays one chain whichever node appends.
 * - Queued appends share a transaction (group commit), as in SQLite; a unit whose expected
 *   version does not hold is refused alone.
 * - Every commit NOTIFYs its head position; each node LISTENs and reads what it has not seen, so
 *   listeners get every event of every node, in position order, once. An append resolves after
 *   the listeners have had its events: a read after it sees it.
 * - Rows are the same as SQLite's (data and metadata as the hashed JSON text, time in ms, hash
 *   raw), so the chain, `verify` and the decoders are shared.
 */
export interface PostgresLogOptions {
  url: string
  clock: Clock
  /** Units of work in one transaction at most. */
  maxGroup?: number
}


interface Pending {
  streamId: string
  events: readonly DomainEvent[]
  options: AppendOptions
  resolve(events: RecordedEvent[]): void
  reject(error: unknown): void
}

type Row = PostgresRow

export class PostgresLog {
  private readonly queue: Pending[] = []
  private committing = false
  private readonly listeners = new Set<CommitListener>()
  /** The last position every listener has had. */
  private delivered: number
  /** Deliveries run one after another, in position order. */
  private delivery: Promise<void> = Promise.resolve()
  private closed = false

  private constructor (
    private readonly writer: pg.Client,
    private readonly reader: pg.Pool,
    private readonly notices: pg.Client,
    private readonly clock: Clock,
    private readonly maxGroup: number,
    head: number
  ) {
    this.delivered = head
    notices.on('notification', message => {
      const position = Number(message.payload)
      if (position > this.delivered) this.catchUp()
    })
  }

  static async open ({ url, clock, maxGroup = 1000 }: PostgresLogOptions): Promise<PostgresLog> {
    const writer = new pg.Client({ connectionString: url })
    const notices = new pg.Client({ connectionString: url })
    const reader = new pg.Pool({ connectionString: url, max: 4 })
    // A session PostgreSQL ends (its shutdown, even while this one is closing) emits 'error';
    // unheard, it would end the process. Its queries fail, and say why, all the same.
    const ignore = () => {}
    writer.on('error', ignore)
    notices.on('error', ignore)
    reader.on('error', ignore)
    await writer.connect()
    await notices.connect()
    await openPostgresSchema(writer)
    await notices.query(`LISTEN ${CHANNEL}`)
    const head = await writer.query<{ position: string | null }>('SELECT max(position) AS position FROM events')
    return new PostgresLog(writer, reader, notices, clock, maxGroup, Number(head.rows[0]?.position ?? 0))
  }

  /** The last position this node's listeners have had. */
  get headPosition (): number { return this.delivered }

  /** Appends to a stream, grouped with the appends queued meanwhile; resolves once committed and told to the listeners. */
  append (streamId: string, events: readonly DomainEvent[], options: AppendOptions): Promise<RecordedEvent[]> {
    if (this.closed) return Promise.reject(new Error('event log is closed'))
    if (options.validated !== true) {
      for (const event of events) {
        const valid = eventDefinitions[event.type].schema.safeParse(event.data)
        if (!valid.success) return Promise.reject(new InvalidEvent(event.type, valid.error.message))
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ streamId, events, options, resolve, reject })
      void this.flush()
    })
  }

  /** Called with every committed group of every node, in position order. Returns an unsubscribe. */
  subscribe (listener: CommitListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  async read (filter: EventFilter = {}): Promise<RecordedEvent[]> {
    const where = ['position > $1']
    const params: unknown[] = [filter.after ?? 0]
    const add = (clause: (n: number) => string, value: unknown) => { params.push(value); where.push(clause(params.length)) }
    if (filter.before !== undefined) add(n => `position < $${n}`, filter.before)
    if (filter.stream !== undefined) add(n => `stream = $${n}`, filter.stream)
    if (filter.type !== undefined) add(n => `type = $${n}`, filter.type)
    if (filter.since !== undefined) add(n => `recorded_at >= $${n}`, Date.parse(filter.since))
    if (filter.until !== undefined) add(n => `recorded_at <= $${n}`, Date.parse(filter.until))
    const limit = filter.limit === undefined ? '' : ` LIMIT ${Math.trunc(filter.limit)}`
    const { rows } = await this.reader.query<Row>(`SELECT ${EVENT_COLUMNS} FROM events WHERE ${where.join(' AND ')} ORDER BY position${limit}`, params)
    return rows.map(row => decodeRow(toEventRow(row)))
  }

  /** Walks the hash chain from the first row, as `devicelog verify` does SQLite's; the first row that does not hold. */
  async verify (): Promise<VerifyResult> {
    let position = 0
    let previous = GENESIS_HASH
    for (;;) {
      const { rows } = await this.reader.query<Row & { hex: string }>(
        `SELECT ${EVENT_COLUMNS}, encode(hash, 'hex') AS hex FROM events WHERE position > $1 ORDER BY position LIMIT 5000`, [position])
      if (rows.length === 0) return { ok: true, count: position, head: previous }
      for (const row of rows) {
        const at = Number(row.position)
        if (at !== position + 1) return { ok: false, position: position + 1, reason: `position ${position + 1} is missing` }
        const expected = chainHashHex(previous, at, row.stream_id, row.stream_version, row.type, row.schema_version, isoTime(Number(row.recorded_at)), row.data, row.metadata)
        if (expected !== row.hex) return { ok: false, position: at, reason: 'hash does not match the row and its predecessor' }
        previous = row.hex
        position = at
      }
    }
  }

  async close (): Promise<void> {
    this.closed = true
    while (this.committing || this.queue.length > 0) await new Promise(resolve => setImmediate(resolve))
    await this.delivery
    await Promise.all([this.writer.end(), this.notices.end(), this.reader.end()])
  }

  private async flush (): Promise<void> {
    if (this.committing) return
    this.committing = true
    try {
      while (this.queue.length > 0) await this.commit(this.queue.splice(0, this.maxGroup))
    } finally {
      this.committing = false
    }
  }

  /** One group in one transaction, under the append lock. */
  private async commit (units: Pending[]): Promise<void> {
    const now = this.clock.now()
    const recordedAt = isoTime(now)
    const accepted: Array<{ unit: Pending, events: RecordedEvent[] }> = []
    const refused: Array<{ unit: Pending, error: Error }> = []
    const rows: unknown[][] = [[], [], [], [], [], [], [], [], []]
    let first = 0
    try {
      await this.writer.query('BEGIN')
      await this.writer.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK])
      const head = await this.writer.query<{ position: string, hash: Buffer }>('SELECT position, hash FROM events ORDER BY position DESC LIMIT 1')
      let position = Number(head.rows[0]?.position ?? 0)
      let previous = head.rows[0]?.hash.toString('hex') ?? GENESIS_HASH
      first = position + 1
      const streams = [...new Set(units.map(unit => unit.streamId))]
      const found = await this.writer.query<{ stream: string, version: number }>(
        'SELECT stream, max(stream_version) AS version FROM events WHERE stream = ANY($1) GROUP BY stream', [streams])
      const versions = new Map(found.rows.map(row => [row.stream, row.version]))
      for (const unit of units) {
        let version = versions.get(unit.streamId) ?? -1
        const expected = unit.options.expectedVersion
        if (expected !== undefined && expected !== 'any' && (expected === 'no_stream' ? version !== -1 : version !== expected)) {
          refused.push({ unit, error: new StreamVersionConflict(unit.streamId, String(expected), version) })
          continue
        }
        const metadata = JSON.stringify(unit.options.metadata)
        const events: RecordedEvent[] = []
        for (const event of unit.events) {
          version += 1
          position += 1
          const schemaVersion = eventDefinitions[event.type].version
          const data = encodeData(event.type, unit.streamId, event.data)
          const hash = chainHash(previous, position, unit.streamId, version, event.type, schemaVersion, recordedAt, data, metadata)
          previous = hash.toString('hex')
          const row = [position, unit.streamId, version, event.type, schemaVersion, now, data, metadata, hash]
          row.forEach((value, i) => rows[i]!.push(value))
          events.push({
            type: event.type, data: event.data, position, stream_id: unit.streamId, stream_version: version,
            schema_version: schemaVersion, recorded_at: recordedAt, metadata: unit.options.metadata, hash: previous
          } as RecordedEvent)
        }
        versions.set(unit.streamId, version)
        accepted.push({ unit, events })
      }
      if (rows[0]!.length > 0) {
        await insertEvents(this.writer, rows)
        await this.writer.query('SELECT pg_notify($1, $2)', [CHANNEL, String(position)])
      }
      await this.writer.query('COMMIT')
    } catch (error) {
      // Nothing of the group is durable: none of its units is acknowledged.
      await this.writer.query('ROLLBACK').catch(() => {})
      for (const unit of units) unit.reject(error)
      return
    }
    for (const { unit, error } of refused) unit.reject(error)
    if (accepted.length === 0) return
    const events = accepted.flatMap(({ events }) => events)
    await this.deliver(first, events, accepted.length)
    for (const { unit, events } of accepted) unit.resolve(events)
  }

  /** Hands committed events to the listeners, in order: this node's own group as it is, anything before it read from the log first. */
  private deliver (first: number, events: RecordedEvent[], units: number): Promise<void> {
    this.delivery = this.delivery.then(async () => {
      if (first > this.delivered + 1) await this.readUpTo(first - 1)
      if (events.at(-1)!.position <= this.delivered) return
      this.tell(events.filter(event => event.position > this.delivered), units)
    })
    return this.delivery
  }

  /** Another node committed: read what this one has not told its listeners yet. */
  private catchUp (): void {
    this.delivery = this.delivery.then(() => this.readUpTo(Infinity)).catch(() => {})
  }

  private async readUpTo (last: number): Promise<void> {
    for (;;) {
      const batch = await this.read({ after: this.delivered, limit: 1000, ...(Number.isFinite(last) ? { before: last + 1 } : {}) })
      if (batch.length === 0) return
      this.tell(batch, 0)
    }
  }

  private tell (events: readonly RecordedEvent[], units: number): void {
    this.delivered = events.at(-1)!.position
    for (const listener of this.listeners) {
      try { listener(events, { units, seconds: 0, here: units > 0 }) } catch { /* a listener's failure must not undo a commit */ }
    }
  }
}
