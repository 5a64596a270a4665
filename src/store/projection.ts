import type { EventType } from '../../events/index.ts'
import type { Db } from './database.ts'
import type { RecordedEvent } from './recorded-event.ts'

/**
 * A read model is data: its name, the event types it folds, the tables it owns, and a pure
 * fold `apply` (given its prepared statements) run inside the append's transaction.
 * Bump `version` when the tables or the fold change: the projection is then dropped and
 * rebuilt from the log at the next start.
 */
export interface Projection {
  readonly name: string
  readonly version: number
  readonly handles: readonly EventType[]
  readonly tables: readonly string[]
  readonly ddl: string
  prepare(db: Db): (event: RecordedEvent) => void
}

type Apply = (event: RecordedEvent) => void

/** Routes each event to the projections that handle its type. */
export class Projections {
  private readonly byType = new Map<string, Apply[]>()

  constructor (db: Db, readonly all: readonly Projection[]) {
    for (const projection of all) db.exec(projection.ddl)
    for (const projection of all) {
      const apply = projection.prepare(db)
      for (const type of projection.handles) {
        const list = this.byType.get(type) ?? []
        list.push(apply)
        this.byType.set(type, list)
      }
    }
  }

  apply (event: RecordedEvent): void {
    const appliers = this.byType.get(event.type)
    if (appliers === undefined) return
    for (const apply of appliers) apply(event)
  }
}

/**
 * Drops and recreates the tables of every projection whose version changed since the last
 * start, and returns those that must be refilled from the log.
 */
export function resetChangedProjections (db: Db, projections: readonly Projection[]): Projection[] {
  const stored = new Map(db.prepare('SELECT name, version FROM projection_versions').all()
    .map(r => { const row = r as { name: string, version: number }; return [row.name, row.version] as const }))
  const hasEvents = db.prepare('SELECT 1 FROM events LIMIT 1').get() !== undefined
  const changed: Projection[] = []
  for (const projection of projections) {
    if (stored.get(projection.name) === projection.version) continue
    for (const table of projection.tables) db.exec(`DROP TABLE IF EXISTS ${table}`)
    db.prepare('INSERT OR REPLACE INTO projection_versions (name, version) VALUES (?, ?)').run(projection.name, projection.version)
    if (hasEvents) changed.push(projection)
  }
  return changed
}
