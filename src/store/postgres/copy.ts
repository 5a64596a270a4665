import pg from 'pg'
import { NameIds, openDatabase } from '../database.ts'

/** A PostgreSQL url, as `--database` and DATABASE_URL take it. */
export const isPostgresUrl = (where: string): boolean => /^postgres(ql)?:\/\//.test(where)

/**
 * Copies a PostgreSQL log's rows, unchanged (hashes included), into a new SQLite log file, from
 * one snapshot of the database: the CLI's commands (replay, verify, backup, export) then run on
 * the copy as on any SQLite log. Resolves with the last position copied.
 */
export async function copyPostgresLog (url: string, path: string, onProgress: (position: number, total: number) => void = () => {}): Promise<number> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const db = openDatabase(path, 'bulk')
  try {
    const table = await client.query<{ events: string | null }>("SELECT to_regclass('events')::text AS events")
    if (table.rows[0]?.events == null) throw new Error('this PostgreSQL database holds no devicelog log (no events table)')
    // One snapshot: nodes appending meanwhile do not tear the copy.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const head = await client.query<{ position: string | null }>('SELECT max(position) AS position FROM events')
    const total = Number(head.rows[0]?.position ?? 0)
    const streams = new NameIds(db, 'streams')
    const types = new NameIds(db, 'event_types')
    const insert = db.prepare(`INSERT INTO events (position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    type Row = { position: string, stream: string, stream_version: number, type: string, schema_version: number, recorded_at: string, data: string, metadata: string, hash: Buffer }
    const copy = db.transaction((rows: Row[]) => {
      for (const row of rows) {
        insert.run(Number(row.position), streams.id(row.stream), row.stream_version, types.id(row.type), row.schema_version, Number(row.recorded_at), row.data, row.metadata, row.hash)
      }
    })
    let after = 0
    for (;;) {
      const { rows } = await client.query<Row>(`SELECT position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash
        FROM events WHERE position > $1 ORDER BY position LIMIT 10000`, [after])
      if (rows.length === 0) break
      copy(rows)
      after = Number(rows.at(-1)!.position)
      onProgress(after, total)
    }
    await client.query('COMMIT')
    return after
  } finally {
    db.close()
    await client.end()
  }
}
