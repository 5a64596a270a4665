import Database from 'better-sqlite3'
import { allProjections } from '../../src/projections.ts'

/** Every row of every projection table, in a stable order: how replays are compared with the live run. */
export function projectionRows (path: string): Record<string, unknown[]> {
  const db = new Database(path, { readonly: true })
  try {
    const rows: Record<string, unknown[]> = {}
    for (const table of allProjections.flatMap(p => p.tables)) {
      const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map(c => c.name)
      rows[table] = db.prepare(`SELECT * FROM ${table} ORDER BY ${columns.join(', ')}`).all()
    }
    return rows
  } finally {
    db.close()
  }
}
