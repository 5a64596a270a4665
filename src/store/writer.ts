// The log's writer, on its own thread: the only connection that writes. It receives groups of
// rows already positioned, versioned and timestamped by the service, and hashes, inserts,
// projects and commits each group in one transaction, so the thread that runs the broker and
// HTTP never waits for SQLite or fsync. Started by writer-thread.mjs (TypeScript through tsx).
import { parentPort, workerData } from 'node:worker_threads'
import { eventDefinitions, type EventType } from '../../events/index.ts'
import { NameIds, openDatabase, type Db } from './database.ts'
import { FoldedEvent, Projections, rebuildProjections, resetChangedProjections, type Projection } from './projection.ts'
import { chainHash, GENESIS_HASH, isoTime, type RecordedEvent } from './recorded-event.ts'

/**
 * A group crosses as one string: rows ROW apart, each row's stream id, stream version, type,
 * data JSON and metadata JSON FIELD apart. JSON text never holds these two characters raw, and
 * stream ids are refused if they do.
 */
export const ROW = '\u0000'
export const FIELD = '\u0001'

export type WriterRequest =
  /** Rows at positions `first`, `first` + 1, ...; `unitEnds`: where each unit's rows end. */
  | { op: 'commit', id: number, recordedAt: number, first: number, rows: string, unitEnds: number[] }
  /**
   * Caps the database at this many pages (SQLite's `max_page_count`, at least its current size):
   * tests use it to fill the log as a full disk would, then to free it again.
   */
  | { op: 'max_page_count', id: number, pages: number }
  | { op: 'close', id: number }

export type WriterReply =
  /** `seconds`: from BEGIN to the end of COMMIT (inserts, projections, fsync), timed here where it runs. */
  | { id: number, ok: true, hashes: string[], seconds: number }
  /** `cause`: the storage failed (see storageCause); the whole group failed with it (`unit` is null). */
  | { id: number, ok: false, unit: number | null, error: { name: string, message: string, code?: string }, cause?: string }

/** The writer's answer to `max_page_count`: the cap now in force (SQLite never sets it below the database's size). */
export interface WriterLimitReply { id: number, maxPageCount: number }

/**
 * What an SQLite result code says of the storage, in words for the people who must act on it,
 * with the code; undefined for a row's own failure (a constraint) and for failures not SQLite's.
 */
export function storageCause (code: string | undefined): string | undefined {
  if (code === undefined || !code.startsWith('SQLITE_') || code.startsWith('SQLITE_CONSTRAINT')) return undefined
  const words = storageWords(code)
  return words === undefined ? code : `${words} (${code})`
}

function storageWords (code: string): string | undefined {
  if (code === 'SQLITE_FULL') return 'the disk is full'
  if (code.startsWith('SQLITE_READONLY')) return 'the database is read-only'
  if (code.startsWith('SQLITE_IOERR')) return 'the disk reported an I/O error'
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'the database is busy'
  return undefined
}

export interface WriterInit {
  path: string
  /** A module that exports the projections (the service's list), and the export's name. */
  projectionsModule: string
  projectionsExport: string
}

export interface WriterReady { ready: true, position: number, hash: string }

export class Writer {
  private readonly projections: Projections
  private readonly streams: NameIds
  private readonly types: NameIds
  private readonly insert
  private readonly begin
  private readonly commit
  private readonly rollback
  position: number
  hash: string

  constructor (readonly db: Db, projections: readonly Projection[]) {
    const changed = resetChangedProjections(db, projections)
    this.projections = new Projections(db, projections)
    if (changed.length > 0) rebuildProjections(db, changed)
    const head = db.prepare('SELECT position, hash FROM events ORDER BY position DESC LIMIT 1').get() as { position: number, hash: Buffer } | undefined
    this.position = head?.position ?? 0
    this.hash = head?.hash.toString('hex') ?? GENESIS_HASH
    this.streams = new NameIds(db, 'streams')
    this.types = new NameIds(db, 'event_types')
    this.insert = db.prepare(`INSERT INTO events (position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.begin = db.prepare('BEGIN IMMEDIATE')
    this.commit = db.prepare('COMMIT')
    this.rollback = db.prepare('ROLLBACK')
  }

  /** Appends and projects one group in one transaction; on any failure nothing of it stays. */
  append (request: Extract<WriterRequest, { op: 'commit' }>): WriterReply {
    const { id, unitEnds, recordedAt, first } = request
    const rows = request.rows.split(ROW)
    const iso = isoTime(recordedAt)
    const hashes: string[] = new Array(rows.length)
    let previous = this.hash
    let index = -1
    const began = performance.now()
    try {
      // Inside the try: BEGIN fails too when the disk is read-only or busy, and that is the group's failure, not the thread's.
      this.begin.run()
      for (index = 0; index < rows.length; index++) {
        const [streamId, versionText, type, data, metadata] = rows[index]!.split(FIELD) as [string, string, string, string, string]
        const position = first + index
        const version = Number(versionText)
        if (position !== this.position + index + 1) throw new Error(`position ${position} does not follow ${this.position + index}`)
        const definition = eventDefinitions[type as EventType]
        const hash = chainHash(previous, position, streamId, version, type, definition.version, iso, data, metadata)
        this.insert.run(position, this.streams.id(streamId), version, this.types.id(type), definition.version, recordedAt, data, metadata, hash)
        previous = hash.toString('hex')
        hashes[index] = previous
        if (this.projections.handles(type)) {
          this.projections.apply(new FoldedEvent(type, data, position, streamId, version, definition.version, iso, metadata, previous) as RecordedEvent)
        }
      }
      index = rows.length
      this.projections.flush()
      index = -1
      this.commit.run()
    } catch (error) {
      // After a full disk or an I/O error SQLite may have rolled back already, or fail to; either
      // way the thread must live on to take the next group.
      if (this.db.inTransaction) try { this.rollback.run() } catch {}
      this.projections.discard()
      this.streams.rolledBack()
      this.types.rolledBack()
      const { name, message, code } = error as Error & { code?: string }
      // A row's own failure (a constraint, a fold that refuses it) is its unit's. The storage
      // failing (full, I/O, busy) or a failure at the group's end (a fold's flush, COMMIT) is
      // the whole group's: running the rest again would only fail again.
      const cause = storageCause(code)
      const unit = index < 0 || index >= rows.length || cause !== undefined ? null : unitEnds.findIndex(end => index < end)
      return { id, ok: false, unit, error: { name, message, code }, cause }
    }
    this.streams.committed()
    this.types.committed()
    this.position += rows.length
    this.hash = previous
    return { id, ok: true, hashes, seconds: (performance.now() - began) / 1000 }
  }

  maxPageCount (pages: number): number {
    return this.db.pragma(`max_page_count = ${Math.trunc(pages)}`, { simple: true }) as number
  }

  close (): void {
    // A clean close leaves no WAL behind: the file alone is the whole log.
    this.db.pragma('wal_checkpoint(TRUNCATE)')
    this.db.close()
  }
}

/** The writer thread's work, with the module that lists its projections (bundled with it, or imported through tsx). */
export function runWriter (module: Record<string, unknown>): void {
  if (parentPort === null) throw new Error('the writer runs in a worker thread')
  const port = parentPort
  const init = workerData as WriterInit
  const writer = new Writer(openDatabase(init.path, 'writer'), (module[init.projectionsExport] as readonly Projection[] | undefined) ?? [])
  port.postMessage({ ready: true, position: writer.position, hash: writer.hash } satisfies WriterReady)
  port.on('message', (request: WriterRequest) => {
    if (request.op === 'commit') {
      port.postMessage(writer.append(request))
    } else if (request.op === 'max_page_count') {
      port.postMessage({ id: request.id, maxPageCount: writer.maxPageCount(request.pages) } satisfies WriterLimitReply)
    } else {
      writer.close()
      port.postMessage({ id: request.id, ok: true, hashes: [], seconds: 0 } satisfies WriterReply)
      port.close()
    }
  })
}
