import type pg from 'pg'
import { Connection } from './connection.ts'
import type { EventRow } from '../recorded-event.ts'
import { APPEND_LOCK, CHANNEL, EVENT_COLUMNS, insertEvents, openPostgresSchema, toEventRow, type PostgresRow } from './schema.ts'

/** How often the notices' session is tried again while PostgreSQL is away. */
const NOTICES_RETRY_MS = 1000

/**
 * The log in PostgreSQL as the writer thread of a node sees it (DATABASE_URL): the one chain every
 * node appends to, under the append lock, and reads the others' appends from. The node's own
 * SQLite file is its replica: the log's rows and its projections, folded from this log.
 */
export class PostgresPrimary {
  /** The session the group's transaction runs in: its statements never move to another session. */
  private transaction: pg.Client | undefined

  private constructor (private readonly client: Connection, private readonly notices: Connection) {}

  /**
   * `onCommit` is told each position another node committed, and Infinity when the notices come
   * back after PostgreSQL was away (what was committed meanwhile was not announced to this node).
   */
  static async open (url: string, onCommit: (position: number) => void): Promise<PostgresPrimary> {
    const client = new Connection(url)
    let lost = false
    const notices: Connection = new Connection(url, {
      setUp: async session => {
        session.on('notification', message => onCommit(Number(message.payload)))
        await session.query(`LISTEN ${CHANNEL}`)
        if (lost) onCommit(Infinity)
      },
      onLost: () => {
        lost = true
        // Listening again as soon as PostgreSQL answers: until then, nothing to hear.
        const retry = () => { notices.session().catch(() => setTimeout(retry, NOTICES_RETRY_MS).unref()) }
        setTimeout(retry, NOTICES_RETRY_MS).unref()
      }
    })
    await openPostgresSchema(await client.session())
    await notices.session()
    return new PostgresPrimary(client, notices)
  }

  /** Rows after `position`, in order, at most `limit` of them. */
  async rowsAfter (position: number, limit = 5000): Promise<EventRow[]> {
    const { rows } = await this.client.query<PostgresRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2`, [position, limit])
    return rows.map(toEventRow)
  }

  /** The hash at a position (hex), undefined where there is no row. */
  async hashAt (position: number): Promise<string | undefined> {
    const { rows } = await this.client.query<{ hash: Buffer }>('SELECT hash FROM events WHERE position = $1', [position])
    return rows[0]?.hash.toString('hex')
  }

  /** Begins a group: the transaction, the append lock (held until commit or rollback), and the head under it; one round trip. */
  async begin (): Promise<number> {
    this.transaction = await this.client.session()
    const results = await this.transaction.query(`BEGIN; SELECT pg_advisory_xact_lock(${APPEND_LOCK}); SELECT max(position) AS position FROM events`) as unknown as pg.QueryResult[]
    return Number(results.at(-1)!.rows[0]?.position ?? 0)
  }

  /** Inserts the group's rows (as the replica stored them, hashes included), tells every node, and commits. */
  async commit (rows: readonly EventRow[]): Promise<void> {
    const columns: unknown[][] = [[], [], [], [], [], [], [], [], []]
    for (const row of rows) {
      const values = [row.position, row.stream_id, row.stream_version, row.type, row.schema_version, row.recorded_at, row.data, row.metadata, row.hash]
      values.forEach((value, i) => columns[i]!.push(value))
    }
    const transaction = this.transaction
    if (transaction === undefined) throw new Error('no group has begun')
    await insertEvents(transaction, columns)
    // The NOTIFY is delivered at the COMMIT; both in one round trip (a position is digits only).
    await transaction.query(`SELECT pg_notify('${CHANNEL}', '${Number(rows.at(-1)!.position)}'); COMMIT`)
    this.transaction = undefined
  }

  async rollback (): Promise<void> {
    await this.transaction?.query('ROLLBACK').catch(() => {})
    this.transaction = undefined
  }

  async close (): Promise<void> {
    await Promise.all([this.client.end(), this.notices.end()])
  }
}
