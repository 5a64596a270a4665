import type { EventType, Metadata } from '../../events/index.ts'
import { namesById, type Db } from './database.ts'
import { decodeData, isoTime, type RecordedEvent } from './recorded-event.ts'

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
  prepare(db: Db): Apply | GroupFold
  /**
   * For a projection that is a plain mapping of the log: SQL that fills its tables from the
   * whole log at once, run when it is rebuilt (a replay, a new version) after the projections
   * folded event by event. It reads the stored data, so it must follow the current schema versions.
   */
  readonly rebuildSql?: string
}

type Apply = (event: RecordedEvent) => void

/**
 * A fold that writes once per group rather than once per event (a latest-of or a count, where
 * only the group's sum matters): `apply` gathers, `flush` writes before the group commits,
 * `discard` forgets what a rolled-back group gathered.
 */
export interface GroupFold {
  apply: Apply
  flush(): void
  discard(): void
}

/** Routes each event to the projections that handle its type. */
export class Projections {
  private readonly byType = new Map<string, Apply[]>()
  private readonly groupFolds: GroupFold[] = []

  constructor (db: Db, readonly all: readonly Projection[]) {
    for (const projection of all) db.exec(projection.ddl)
    for (const projection of all) {
      const prepared = projection.prepare(db)
      const apply = typeof prepared === 'function' ? prepared : prepared.apply
      if (typeof prepared !== 'function') this.groupFolds.push(prepared)
      for (const type of projection.handles) {
        const list = this.byType.get(type) ?? []
        list.push(apply)
        this.byType.set(type, list)
      }
    }
  }

  handles (type: string): boolean { return this.byType.has(type) }

  apply (event: RecordedEvent): void {
    const appliers = this.byType.get(event.type)
    if (appliers === undefined) return
    for (const apply of appliers) apply(event)
  }

  /** The group is about to commit: folds that write once per group write now. */
  flush (): void { for (const fold of this.groupFolds) fold.flush() }

  /** The group was rolled back. */
  discard (): void { for (const fold of this.groupFolds) fold.discard() }
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

/** An event handed to projections: its data and metadata are parsed only if a projection reads them. */
export class FoldedEvent {
  private parsed: unknown

  constructor (readonly type: string, private readonly dataText: string, readonly position: number, readonly stream_id: string,
    readonly stream_version: number, readonly schema_version: number, readonly recorded_at: string,
    private readonly metadataText: string, readonly hash: string) {}

  get data (): unknown {
    return (this.parsed ??= decodeData(this.type, this.schema_version, this.dataText, this.stream_id))
  }

  get metadata (): Metadata { return JSON.parse(this.metadataText) as Metadata }
}

type RawEvent = [number, number, number, number, number, number, string, string]

/**
 * Folds every event of `source` that a projection of `runner` handles, in position order, a
 * page at a time (never the whole log in memory). Returns the last position folded.
 */
export function foldLog (source: Db, runner: Projections, onPage: (position: number) => void = () => {}): number {
  const { streams, types } = namesById(source)
  // Rows of types no projection folds are not even read.
  const handled = types.flatMap((type, id) => runner.handles(type) ? [id] : [])
  const page = source.prepare(`SELECT position, stream, stream_version, type, schema_version, recorded_at, data, metadata
    FROM events WHERE position > ? AND type IN (${handled.join(', ')}) ORDER BY position LIMIT 5000`).raw()
  let lastTime = -1
  let lastIso = ''
  let after = 0
  for (;;) {
    const rows = page.all(after) as RawEvent[]
    if (rows.length === 0) return after
    for (const [position, stream, version, typeId, schemaVersion, recordedAt, data, metadata] of rows) {
      if (recordedAt !== lastTime) { lastTime = recordedAt; lastIso = isoTime(recordedAt) }
      const type = types[typeId]!
      const streamId = streams[stream]!
      runner.apply(new FoldedEvent(type, data, position, streamId, version, schemaVersion, lastIso, metadata, '') as RecordedEvent)
    }
    runner.flush()
    after = rows[rows.length - 1]![0]
    onPage(after)
  }
}

/**
 * Refill projections from the whole log: those with SQL of their own set-based, after the others
 * are folded event by event (their SQL may read what those built).
 */
export function rebuildProjections (db: Db, projections: readonly Projection[], onPage?: (position: number) => void): number {
  for (const projection of projections) if (projection.rebuildSql !== undefined) db.exec(projection.ddl)
  const runner = new Projections(db, projections.filter(projection => projection.rebuildSql === undefined))
  return db.transaction(() => {
    const last = foldLog(db, runner, onPage)
    for (const projection of projections) if (projection.rebuildSql !== undefined) db.exec(projection.rebuildSql)
    return last
  }).immediate()
}
