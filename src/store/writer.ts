// The log's writer, on its own thread: the only connection that writes. It receives groups of
// rows already positioned, versioned and timestamped by the service, and hashes, inserts,
// projects and commits each group in one transaction, so the thread that runs the broker and
// HTTP never waits for SQLite or fsync. Started by writer-thread.mjs (TypeScript through tsx).
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { eventDefinitions, type EventType } from '../../events/index.ts'
import { NameIds, openDatabase, type Db } from './database.ts'
import { FoldedEvent, Projections, rebuildProjections, resetChangedProjections, type Projection } from './projection.ts'
import { chainHash, decodeRow, GENESIS_HASH, isoTime, type EventRow, type RecordedEvent } from './recorded-event.ts'

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
  /** The log in PostgreSQL: fold into the replica what other nodes committed until now, then answer (WriterSynced). */
  | { op: 'sync', id: number }
  | { op: 'close', id: number }

export type WriterReply =
  /** `seconds`: from BEGIN to the end of COMMIT (inserts, projections, fsync), timed here where it runs. */
  | { id: number, ok: true, hashes: string[], seconds: number }
  /** `cause`: the storage failed (see storageCause); the whole group failed with it (`unit` is null). */
  | { id: number, ok: false, unit: number | null, error: { name: string, message: string, code?: string }, cause?: string }
  /** Another node appended first (PostgreSQL): its events came as `appended` messages; decide the group again on them. */
  | { id: number, ok: false, stale: true }

/** Events another node appended (PostgreSQL), now in this node's replica: the service tells its listeners. */
export interface WriterAppended { appended: RecordedEvent[], hash: string }

/** The replica holds what PostgreSQL held when the `sync` was asked (or PostgreSQL could not be read: `reached` false). */
export interface WriterSynced { id: number, synced: true, reached: boolean }

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
  /** DATABASE_URL: the log is PostgreSQL's, shared by the nodes; this file is the node's replica of it. */
  postgresUrl?: string
  /** A module that exports the projections (the service's list), and the export's name. */
  projectionsModule: string
  projectionsExport: string
}

export interface WriterReady { ready: true, position: number, hash: string }

/** A group inserted and folded, not committed yet. */
interface Staged { rows: EventRow[], count: number, hashes: string[], previous: string, began: number }

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
  /** Whether `stage` returns the rows as stored (the log in PostgreSQL takes them). */
  keepRows = false

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
    // Staged behind a group that failed: its positions no longer follow the log's; the service stages its units again.
    if (request.first !== this.position + 1) return { id: request.id, ok: false, stale: true }
    const staged = this.stage(request)
    if ('reply' in staged) return staged.reply
    return this.finish(request.id, staged)
  }

  /**
   * BEGIN, the group's rows and their folds, not committed yet: the rows as stored (for
   * PostgreSQL) and the hashes; or the failure's reply, everything rolled back.
   */
  stage (request: Extract<WriterRequest, { op: 'commit' }>): { reply: WriterReply } | Staged {
    const { id, unitEnds, recordedAt, first } = request
    const rows = request.rows.split(ROW)
    const iso = isoTime(recordedAt)
    const hashes: string[] = new Array(rows.length)
    const stored: EventRow[] = this.keepRows ? new Array(rows.length) : []
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
        // The rows as stored, for PostgreSQL only: on one machine nothing reads them.
        if (this.keepRows) stored[index] = { position, stream_id: streamId, stream_version: version, type, schema_version: definition.version, recorded_at: recordedAt, data, metadata, hash }
        previous = hash.toString('hex')
        hashes[index] = previous
        if (this.projections.handles(type)) {
          this.projections.apply(new FoldedEvent(type, data, position, streamId, version, definition.version, iso, metadata, previous) as RecordedEvent)
        }
      }
      index = rows.length
      this.projections.flush()
    } catch (error) {
      this.undo()
      const { name, message, code } = error as Error & { code?: string }
      // A row's own failure (a constraint, a fold that refuses it) is its unit's. The storage
      // failing (full, I/O, busy) or a failure at the group's end (a fold's flush) is the whole
      // group's: running the rest again would only fail again.
      const cause = storageCause(code)
      const unit = index < 0 || index >= rows.length || cause !== undefined ? null : unitEnds.findIndex(end => index < end)
      return { reply: { id, ok: false, unit, error: { name, message, code }, cause } }
    }
    return { rows: stored, count: rows.length, hashes, previous, began }
  }

  /** COMMITs a staged group (with the log in PostgreSQL, after PostgreSQL committed the same rows). */
  finish (id: number, staged: Staged): WriterReply {
    try {
      this.commit.run()
    } catch (error) {
      this.undo()
      const { name, message, code } = error as Error & { code?: string }
      return { id, ok: false, unit: null, error: { name, message, code }, cause: storageCause(code) }
    }
    this.streams.committed()
    this.types.committed()
    this.position += staged.count
    this.hash = staged.previous
    return { id, ok: true, hashes: staged.hashes, seconds: (performance.now() - staged.began) / 1000 }
  }

  /** A staged group's end without its commit: nothing of it stays. */
  undo (): void {
    // After a full disk or an I/O error SQLite may have rolled back already, or fail to; either
    // way the thread must live on to take the next group.
    if (this.db.inTransaction) try { this.rollback.run() } catch {}
    this.projections.discard()
    this.streams.rolledBack()
    this.types.rolledBack()
  }

  /** Rows another node appended (PostgreSQL), stored and folded as they are, in one transaction; the events, for the service's listeners. */
  replicate (rows: readonly EventRow[]): RecordedEvent[] {
    this.begin.run()
    try {
      for (const row of rows) {
        if (row.position !== this.position + 1) throw new Error(`position ${row.position} does not follow ${this.position}`)
        this.insert.run(row.position, this.streams.id(row.stream_id), row.stream_version, this.types.id(row.type), row.schema_version, row.recorded_at, row.data, row.metadata, row.hash)
        const hash = row.hash.toString('hex')
        if (this.projections.handles(row.type)) {
          this.projections.apply(new FoldedEvent(row.type, row.data, row.position, row.stream_id, row.stream_version, row.schema_version, isoTime(row.recorded_at), row.metadata, hash) as RecordedEvent)
        }
        this.position = row.position
        this.hash = hash
      }
      this.projections.flush()
      this.commit.run()
    } catch (error) {
      this.undo()
      throw error
    }
    this.streams.committed()
    this.types.committed()
    return rows.map(decodeRow)
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
  if (init.postgresUrl !== undefined) {
    runReplica(port, writer, init.postgresUrl, init.path).catch(error => {
      // The thread cannot go on (PostgreSQL unreachable at start, a replica that diverged): the service learns it from the thread's error.
      setImmediate(() => { throw error })
    })
    return
  }
  port.postMessage({ ready: true, position: writer.position, hash: writer.hash } satisfies WriterReady)
  port.on('message', (request: WriterRequest) => {
    if (request.op === 'commit') {
      port.postMessage(writer.append(request))
    } else if (request.op === 'sync') {
      port.postMessage({ id: request.id, synced: true, reached: true } satisfies WriterSynced)
    } else if (request.op === 'max_page_count') {
      port.postMessage({ id: request.id, maxPageCount: writer.maxPageCount(request.pages) } satisfies WriterLimitReply)
    } else {
      writer.close()
      port.postMessage({ id: request.id, ok: true, hashes: [], seconds: 0 } satisfies WriterReply)
      port.close()
    }
  })
}

/** How long the append lock waits, after a stale group, for the group decided again before it is let go. */
const STALE_HOLD_MS = 1000

/**
 * DATABASE_URL: the log is PostgreSQL's, one chain for every node; this node's file is its
 * replica (the rows and the projections, folded from it). A group takes PostgreSQL's append lock,
 * and under it: if another node appended since, those rows are folded into the replica and sent to
 * the service, and the group is decided again on them (`stale`); else the group is inserted and
 * folded into the replica, committed in PostgreSQL (the durable point: then it is acknowledged),
 * then in the replica. Between groups, another node's commit (NOTIFY) is folded in as it comes.
 * The replica's projections check their constraints (a name registered twice) against the whole
 * log, since nobody appends while the lock is held.
 */
async function runReplica (port: MessagePort, writer: Writer, url: string, path: string): Promise<void> {
  writer.keepRows = true
  let work: Promise<void> = Promise.resolve()
  /** One thing at a time on the replica and on the connection: groups and catch-ups in turn. */
  const serial = (task: () => Promise<void>) => {
    work = work.then(task).catch(error => { setImmediate(() => { throw error }) })
  }
  const catchUp = async (tell: boolean) => {
    for (let rows = await primary.rowsAfter(writer.position); rows.length > 0; rows = await primary.rowsAfter(writer.position)) {
      const appended = writer.replicate(rows)
      if (tell) port.postMessage({ appended, hash: writer.hash } satisfies WriterAppended)
    }
  }
  // Loaded only with DATABASE_URL: on one machine the writer thread keeps no PostgreSQL client in memory.
  const { PostgresPrimary } = await import('./postgres/primary.ts')
  const primary = await PostgresPrimary.open(url, position => {
    // PostgreSQL away meanwhile: the notices' return, or the next group, catches up.
    if (position > writer.position) serial(() => catchUp(true).catch(() => {}))
  })
  if (writer.position > 0 && await primary.hashAt(writer.position) !== writer.hash) {
    throw new Error(`${path} is not a replica of the log in PostgreSQL (its row ${writer.position} differs, or is not there): remove the file, and it is built again from PostgreSQL`)
  }
  await catchUp(false)
  port.postMessage({ ready: true, position: writer.position, hash: writer.hash } satisfies WriterReady)

  // A stale group's lock is kept for the group decided again, which comes next: with several
  // nodes appending at once, each would otherwise find another's rows again at its next try.
  let held: ReturnType<typeof setTimeout> | undefined
  const commitGroup = async (request: Extract<WriterRequest, { op: 'commit' }>) => {
    let head: number
    if (held !== undefined) {
      clearTimeout(held)
      held = undefined
      head = writer.position
    } else {
      try {
        head = await primary.begin()
      } catch (error) {
        await primary.rollback()
        port.postMessage(postgresFailure(request.id, error))
        return
      }
    }
    // Another node appended since this group was decided (or since the service last heard): decided again on it.
    if (head !== writer.position || request.first !== writer.position + 1) {
      await catchUp(true)
      held = setTimeout(() => serial(async () => {
        if (held === undefined) return
        held = undefined
        await primary.rollback()
      }), STALE_HOLD_MS)
      port.postMessage({ id: request.id, ok: false, stale: true } satisfies WriterReply)
      return
    }
    const staged = writer.stage(request)
    if ('reply' in staged) {
      await primary.rollback()
      port.postMessage(staged.reply)
      return
    }
    try {
      await primary.commit(staged.rows)
    } catch (error) {
      writer.undo()
      await primary.rollback()
      port.postMessage(postgresFailure(request.id, error))
      return
    }
    const reply = writer.finish(request.id, staged)
    if (reply.ok) return port.postMessage(reply)
    // Durable in PostgreSQL but not in the replica (its disk): read back from PostgreSQL, it is acknowledged.
    await catchUp(false)
    port.postMessage({ id: request.id, ok: true, hashes: staged.hashes, seconds: (performance.now() - staged.began) / 1000 } satisfies WriterReply)
  }

  port.on('message', (request: WriterRequest) => {
    if (request.op === 'commit') {
      // PostgreSQL lost while catching up: the group fails as a whole, as when it could not begin.
      serial(() => commitGroup(request).catch(async error => {
        if (held !== undefined) clearTimeout(held)
        held = undefined
        await primary.rollback()
        port.postMessage(postgresFailure(request.id, error))
      }))
    } else if (request.op === 'sync') {
      // In turn with the groups: what this node committed before is folded already.
      serial(async () => {
        const reached = await catchUp(true).then(() => true, () => false)
        port.postMessage({ id: request.id, synced: true, reached } satisfies WriterSynced)
      })
    } else if (request.op === 'max_page_count') {
      port.postMessage({ id: request.id, maxPageCount: writer.maxPageCount(request.pages) } satisfies WriterLimitReply)
    } else {
      serial(async () => {
        if (held !== undefined) clearTimeout(held)
        await primary.close()
        writer.close()
        port.postMessage({ id: request.id, ok: true, hashes: [], seconds: 0 } satisfies WriterReply)
        port.close()
      })
    }
  })
}

/** PostgreSQL could not take the group (unreachable, its disk): the whole group fails, and the service says why. */
function postgresFailure (id: number, error: unknown): WriterReply {
  const { name, message, code } = error as Error & { code?: string }
  return { id, ok: false, unit: null, error: { name, message, code }, cause: `PostgreSQL: ${message}` }
}
