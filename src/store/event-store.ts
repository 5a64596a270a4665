import { existsSync } from 'node:fs'
import { Worker } from 'node:worker_threads'
import { eventDefinitions, type DomainEvent, type Metadata } from '../../events/index.ts'
import type { Clock } from '../clock.ts'
import { InvalidEvent, ReadOnlyLog, StoreUnavailable, StreamVersionConflict } from '../errors.ts'
import { openDatabase, type Db } from './database.ts'
import type { Projection } from './projection.ts'
import { decodeRow, encodeData, GENESIS_HASH, isoTime, type EventRow, type RecordedEvent } from './recorded-event.ts'
import { threadExecArgv, writerBundle } from './thread-bundle.ts'
import { FIELD, ROW, type WriterAppended, type WriterInit, type WriterLimitReply, type WriterReady, type WriterReply, type WriterRequest, type WriterSynced } from './writer.ts'

/**
 * `no_stream`: the stream must not exist yet; a number: its current version must be exactly that;
 * `any`: the events do not depend on the stream's state (a report is recorded whatever came before).
 * Left out, the unit decided from the committed state it read, so it must still be current.
 */
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

/** What a unit of work sees: the group's time, stream versions, and appends. */
export interface Transaction {
  /** The clock when the group started: every event of the group is recorded at this time. */
  readonly now: number
  append(streamId: string, events: readonly DomainEvent[], options: AppendOptions): RecordedEvent[]
  streamVersion(streamId: string): number
}

/**
 * A unit of work reads committed state (the projections, through `store.db`) and appends: it
 * must do nothing else, since the store may run it again (after another unit's failure, or
 * when a unit before it in the group changed a stream it decided on). Act on its result after
 * the promise settles, which is after the COMMIT.
 */
export type Work<T> = (tx: Transaction) => T

/**
 * A capability's decider as the store runs it (`store.handle`): the state of a stream as the
 * committed projections hold it, and the events a command makes of it. Both only read: they
 * may run again. A decider throws a catalogue error (errors.ts) to refuse a command.
 */
export interface Decider<C, S, E extends DomainEvent> {
  state(streamId: string): S
  decide(command: C, state: S): E[]
}
/**
 * A committed group: its units of work, the writer's time from BEGIN to COMMIT, and whether this
 * node committed it. With the log in PostgreSQL every node is told of every group; an effect that
 * reaches beyond the node (a publish over brokers bridged by Redis, a command run) acts once, on
 * the node that committed (`here`), while each node's own views (sockets, maps, streams) follow all.
 */
export interface GroupCommit { units: number, seconds: number, here: boolean }
export type CommitListener = (events: readonly RecordedEvent[], group: GroupCommit) => void

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

export interface EventStoreOptions {
  path: string
  /** The module the writer thread imports the projections from, and the export that lists them. */
  projections: { module: string | URL, export: string }
  clock: Clock
  /** Most units of work committed in one transaction. */
  maxGroup?: number
  /** DATABASE_URL: the log is PostgreSQL's, shared with other nodes; `path` is this node's replica of it. */
  postgresUrl?: string
  /** Where a storage fault is told, once when it begins and once when it ends (the service's logger). */
  log?: StoreLog
  /**
   * Serve the file for reading only (READ_ONLY=true: a replay or a backup an auditor browses):
   * no writer thread, nothing created or migrated, and every transact refused (405).
   */
  readOnly?: boolean
}

export interface StoreLog {
  error(details: object, message: string): void
  warn(details: object, message: string): void
  info(details: object, message: string): void
}

/**
 * Whether the log can record now. Degraded from a group the storage failed (full, read-only,
 * I/O error, busy) until the next group commits; `cause` says which, `since` when it began.
 */
export type StoreHealth =
  | { status: 'ok' }
  | { status: 'degraded', cause: string, since: string }
  /** READ_ONLY=true: the log is served for reading and records nothing. */
  | { status: 'read_only' }

interface Pending {
  work: Work<unknown>
  resolve(value: unknown): void
  reject(error: unknown): void
  /** Its rows were refused once already (beside other units', or behind a group then in flight), and it ran again. */
  retried?: boolean
}

interface StagedUnit { pending: Pending, value: unknown }

interface Group {
  id: number
  now: number
  /** The position of its first row: after the committed rows and those of the groups in flight when it was staged. */
  first: number
  units: StagedUnit[]
  /** Each row as the writer reads it: stream, version, type, data and metadata, FIELD apart. */
  rows: string[]
  events: RecordedEvent[]
  unitEnds: number[]
  /** Stream versions after this group's appends. */
  versions: Map<string, number>
  /** Staged while another group was in flight: its units decided without what that one appends. */
  behind: boolean
}

const SEPARATORS = /[\u0000\u0001]/

/** Thrown inside a unit that decided on a stream an earlier unit of its group appended to. */
class RunAfterCommit extends Error {}

/**
 * The append-only log, as the service sees it. Units of work queue up; while the writer thread
 * commits one group, the next one gathers (group commit). A group's units run here, one after
 * the other, reading committed state and staging appends; the writer hashes, inserts, projects
 * and fsyncs the group as one transaction. A unit's promise settles only after that COMMIT,
 * which is what makes an acknowledgement durable. Reads go through `db`, a read connection that
 * sees every committed group.
 */
export class EventStore {
  private queue: Pending[] = []
  private flushScheduled = false
  /** Groups handed to the writer and not answered yet, oldest first (the writer takes them in turn). */
  private inFlight: Group[] = []
  private nextId = 1
  private position: number
  private hash: string
  private readonly listeners = new Set<CommitListener>()
  /** caughtUp's round trips to the writer: the one under way, the next, and their answers by id. */
  private syncing: Promise<void> | undefined
  private nextSync: Promise<void> | undefined
  private readonly syncs = new Map<number, () => void>()
  private readonly committedVersions = new Map<string, number>()
  /** Units whose rows were refused beside others': run again once those commit. */
  private readonly afterNextCommit: Pending[] = []
  /** Units that decided on a stream a group before theirs is appending to: run again once a group is answered. */
  private readonly afterAnswer: Pending[] = []
  /** Groups the writer may hold at once (see flush). */
  private readonly maxInFlight: number
  private readonly selectStreamVersion
  private closing: Promise<void> | undefined
  private drained: (() => void) | undefined
  private failure: Error | undefined
  private readonly limits = new Map<number, { resolve(pages: number): void, reject(error: unknown): void }>()
  private currentHealth: StoreHealth = { status: 'ok' }

  private constructor (
    readonly db: Db,
    /** None when read-only. */
    private readonly worker: Worker | undefined,
    head: WriterReady,
    private readonly clock: Clock,
    private readonly maxGroup: number,
    private readonly log: StoreLog | undefined,
    private readonly sharedLog = false
  ) {
    this.position = head.position
    this.hash = head.hash
    // With the log in PostgreSQL each group takes the append lock and may be found stale: one at a time.
    this.maxInFlight = sharedLog ? 1 : 2
    this.selectStreamVersion = db.prepare('SELECT max(stream_version) FROM events WHERE stream = (SELECT id FROM streams WHERE name = ?)').pluck()
    if (worker === undefined) {
      this.currentHealth = { status: 'read_only' }
      return
    }
    // Every stream's version, read once (a seek per stream, not a walk of the log): after a
    // restart a storm of reconnects appends once to each device's stream, and a point read each,
    // while the writer commits, cost ~16 µs (the read connection's cache starts over at each commit).
    const versions = db.prepare('SELECT name, (SELECT max(stream_version) FROM events WHERE stream = streams.id) FROM streams').raw().iterate() as Iterable<[string, number | null]>
    for (const [name, version] of versions) if (version !== null) this.committedVersions.set(name, version)
    worker.on('message', (reply: WriterReply | WriterLimitReply | WriterAppended | WriterSynced) => {
      if ('maxPageCount' in reply) this.limited(reply)
      else if ('appended' in reply) this.appended(reply)
      else if ('synced' in reply) this.synced(reply.id)
      else this.committed(reply)
    })
    worker.on('error', error => this.fail(error))
    worker.on('exit', code => { if (this.closing === undefined) this.fail(new Error(`the log's writer thread exited (${code})`)) })
  }

  /** Starts the writer thread (which creates the schema and rebuilds changed projections), then opens a read connection. */
  static async open ({ path, projections, clock, maxGroup = 200, log, readOnly = false, postgresUrl }: EventStoreOptions): Promise<EventStore> {
    if (readOnly) return EventStore.openReadOnly(path, projections, clock, log)
    const workerData: WriterInit = { path, projectionsModule: String(projections.module), projectionsExport: projections.export, postgresUrl }
    const worker = new Worker(await writerBundle(workerData.projectionsModule) ?? new URL('./writer-thread.mjs', import.meta.url), { workerData, execArgv: threadExecArgv() })
    const ready = await new Promise<WriterReady>((resolve, reject) => {
      const exited = (code: number) => failed(new Error(`the log's writer thread exited (${code}) before it was ready`))
      const failed = (error: Error) => { worker.off('message', started); reject(error) }
      const started = (message: WriterReady) => { worker.off('error', failed); worker.off('exit', exited); resolve(message) }
      worker.once('message', started).once('error', failed).once('exit', exited)
    })
    return new EventStore(openDatabase(path, 'reader'), worker, ready, clock, maxGroup, log, postgresUrl !== undefined)
  }

  /**
   * A file served for reading: its head and its read models as they are, nothing written to it.
   * The projections must be the ones this version builds (a writer would rebuild them; a reader cannot).
   */
  private static async openReadOnly (path: string, projections: EventStoreOptions['projections'], clock: Clock, log: StoreLog | undefined): Promise<EventStore> {
    if (!existsSync(path)) throw new Error(`READ_ONLY: no database at ${path}`)
    const db = openDatabase(path, 'reader')
    try {
      const columns = db.prepare("SELECT name FROM pragma_table_info('events')").pluck().all() as string[]
      if (!columns.includes('stream')) throw new Error(`READ_ONLY: ${path} holds no log of this version: rebuild it with \`devicelog replay --database ${path} --out FILE\``)
      const module = await import(String(projections.module)) as Record<string, readonly Projection[] | undefined>
      const stored = new Map((db.prepare('SELECT name, version FROM projection_versions').raw().all() as Array<[string, number]>))
      const stale = (module[projections.export] ?? []).filter(projection => stored.get(projection.name) !== projection.version)
      if (stale.length > 0) {
        const names = stale.map(projection => `${projection.name} (${stored.get(projection.name) ?? 'none'}, this version builds ${projection.version})`).join(', ')
        throw new Error(`READ_ONLY: the read models of ${path} are not this version's: ${names}; rebuild them with \`devicelog replay --database ${path} --out FILE\``)
      }
      const head = db.prepare('SELECT position, lower(hex(hash)) AS hash FROM events ORDER BY position DESC LIMIT 1').get() as { position: number, hash: string } | undefined
      return new EventStore(db, undefined, { ready: true, position: head?.position ?? 0, hash: head?.hash ?? GENESIS_HASH }, clock, 1, log)
    } catch (error) {
      db.close()
      throw error
    }
  }

  /** Whether the log is served for reading only: every transact is refused (405). */
  get readOnly (): boolean { return this.worker === undefined }

  /** Whether other nodes append to the same log (DATABASE_URL): what this node finds in it may be theirs. */
  get shared (): boolean { return this.sharedLog }

  /** Run `work` in the next group; resolves with its result once that group is committed. */
  transact<T> (work: Work<T>): Promise<T> {
    if (this.worker === undefined) return Promise.reject(new ReadOnlyLog())
    if (this.closing !== undefined) return Promise.reject(new Error('event store is closed'))
    if (this.failure !== undefined) return Promise.reject(this.failure)
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject })
      if (!this.flushScheduled && this.inFlight.length < this.maxInFlight) {
        this.flushScheduled = true
        setImmediate(() => { this.flushScheduled = false; this.flush() })
      }
    })
  }

  append (streamId: string, events: readonly DomainEvent[], options: AppendOptions): Promise<RecordedEvent[]> {
    return this.transact(tx => tx.append(streamId, events, options))
  }

  /**
   * The one way a command becomes events: in a unit of work, read the stream's state as
   * committed, decide, and append expecting the stream's committed version (so a command decided
   * on a state another unit of the group has since changed is decided again on the new one).
   * Resolves with the events once committed; act on them then.
   */
  handle<C, S, E extends DomainEvent> (decider: Decider<C, S, E>, streamId: string, command: C, metadata: Metadata): Promise<E[]> {
    return this.transact(tx => {
      const version = this.committedVersion(streamId)
      const events = decider.decide(command, decider.state(streamId))
      if (events.length > 0) tx.append(streamId, events, { metadata, expectedVersion: version === -1 ? 'no_stream' : version })
      return events
    })
  }

  /** Called with every group of events right after it commits. Returns an unsubscribe. */
  subscribe (listener: CommitListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  get headPosition (): number { return this.position }

  /**
   * With the log in PostgreSQL, resolves once this node's replica holds every event any node had
   * committed when it was called: a read after it sees whatever was acknowledged before, on any
   * node. Callers at once share one round trip; one that comes while a catch-up is under way
   * waits for the next (the one under way may have read the head before its call). PostgreSQL
   * out of reach, it resolves all the same: reads go on from the replica. On one machine: at once.
   */
  caughtUp (): Promise<void> {
    if (!this.sharedLog || this.worker === undefined || this.closing !== undefined || this.failure !== undefined) return Promise.resolve()
    if (this.syncing === undefined) {
      this.syncing = this.sync().finally(() => { this.syncing = undefined })
      return this.syncing
    }
    this.nextSync ??= this.syncing.then(() => {
      this.nextSync = undefined
      return this.caughtUp()
    })
    return this.nextSync
  }

  private synced (id: number): void {
    this.syncs.get(id)?.()
    this.syncs.delete(id)
  }

  private sync (): Promise<void> {
    const id = this.nextId++
    return new Promise<void>(resolve => {
      this.syncs.set(id, resolve)
      this.worker!.postMessage({ op: 'sync', id } satisfies WriterRequest)
    })
  }

  get health (): StoreHealth { return this.currentHealth }

  /**
   * Caps the database at `pages` pages (SQLite's `max_page_count`, on the writer's connection);
   * resolves with the cap in force, which SQLite never sets below the database's size. Not the
   * service's: a test fills the log with it as a full disk would, then raises it to free the disk.
   */
  setMaxPageCount (pages: number): Promise<number> {
    const worker = this.worker
    if (worker === undefined) return Promise.reject(new ReadOnlyLog())
    if (this.closing !== undefined || this.failure !== undefined) return Promise.reject(new Error('event store is closed'))
    const id = this.nextId++
    return new Promise<number>((resolve, reject) => {
      this.limits.set(id, { resolve, reject })
      worker.postMessage({ op: 'max_page_count', id, pages } satisfies WriterRequest)
    })
  }

  read (filter: EventFilter = {}): RecordedEvent[] {
    return readEvents(this.db, filter)
  }

  /** Commit what is queued, close the writer (which checkpoints), then the read connection. Later transacts are refused. */
  close (): Promise<void> {
    const worker = this.worker
    if (worker === undefined) {
      this.closing ??= Promise.resolve().then(() => { this.listeners.clear(); this.db.close() })
      return this.closing
    }
    this.closing ??= (async () => {
      if (this.inFlight.length > 0 || this.queue.length > 0) {
        await new Promise<void>(resolve => { this.drained = resolve; this.flush() })
      }
      this.listeners.clear()
      if (this.failure === undefined) {
        await new Promise<void>(resolve => {
          // Its answer (id 0), not another node's events or a catch-up's answer coming first.
          worker.on('message', (message: { id?: number }) => { if (message.id === 0) resolve() })
          worker.once('exit', () => resolve())
          worker.postMessage({ op: 'close', id: 0 } satisfies WriterRequest)
        })
      }
      await worker.terminate()
      this.db.close()
    })()
    return this.closing
  }

  /**
   * Runs the next group's units and hands their rows to the writer. Up to two groups are in
   * flight: the next one is staged and handed over while the writer commits the one before, so
   * the broker's thread and the writer work at once instead of in turn. A group staged behind
   * another sees what a later unit of the same group would: committed state, with the stream
   * versions of the groups before it; a unit that decided on a stream one of them appends to runs
   * again once it is answered. If the group before fails, the writer refuses the ones after it
   * (their positions no longer follow), and their units are staged again.
   */
  private flush (): void {
    while (this.inFlight.length < this.maxInFlight && this.queue.length > 0) {
      const group = this.stage(this.queue.splice(0, this.maxGroup), this.inFlight.length > 0)
      if (group.rows.length === 0) {
        for (const unit of group.units) unit.pending.resolve(unit.value)
        // Nothing committed: what waited for the others' commit runs now.
        if (this.inFlight.length === 0) this.queue.unshift(...this.afterAnswer.splice(0), ...this.afterNextCommit.splice(0))
        continue
      }
      this.inFlight.push(group)
      // One string for the whole group: a single copy across threads, whatever the number of rows.
      this.worker!.postMessage({
        op: 'commit', id: group.id, recordedAt: group.now, first: group.first, rows: group.rows.join(ROW), unitEnds: group.unitEnds
      } satisfies WriterRequest)
    }
    if (this.inFlight.length === 0 && this.queue.length === 0) this.drained?.()
  }

  /** Every group in flight is given up (the oldest failed, or was stale): their units, in order, and the waiting ones go back to the queue's front. */
  private abandonInFlight (first: Pending[]): void {
    const rest = this.inFlight.slice(1).flatMap(group => group.units.map(unit => unit.pending))
    this.inFlight = []
    this.queue.unshift(...first, ...rest, ...this.afterAnswer.splice(0))
  }

  private stage (pendings: Pending[], behind: boolean): Group {
    const group: Group = { id: this.nextId++, now: this.clock.now(), first: this.nextPosition, units: [], rows: [], events: [], unitEnds: [], versions: new Map(), behind }
    const recordedAt = isoTime(group.now)
    const later: Pending[] = []
    for (const pending of pendings) {
      const unit = new UnitOfWork(this, group, recordedAt)
      let value: unknown
      try {
        value = pending.work(unit)
      } catch (error) {
        unit.undo()
        if (error instanceof RunAfterCommit) later.push(pending)
        else pending.reject(error)
        continue
      }
      group.units.push({ pending, value })
      group.unitEnds.push(group.rows.length)
    }
    this.afterAnswer.push(...later)
    return group
  }

  /** Another node's events (the log in PostgreSQL), in this node's replica now: told to the listeners as any commit. */
  private appended ({ appended, hash }: WriterAppended): void {
    if (appended.length === 0) return
    this.position = appended.at(-1)!.position
    this.hash = hash
    for (const event of appended) this.committedVersions.set(event.stream_id, event.stream_version)
    const commit: GroupCommit = { units: 0, seconds: 0, here: false }
    for (const listener of this.listeners) {
      try { listener(appended, commit) } catch { /* a listener's failure must not undo a commit */ }
    }
  }

  private committed (reply: WriterReply): void {
    const group = this.inFlight[0]
    // A group given up after the one before it failed: its units are queued again already.
    if (group === undefined || reply.id !== group.id) return
    if (!reply.ok && 'stale' in reply) {
      // Another node appended first: its events came just before; every unit decides again on them.
      this.abandonInFlight(group.units.map(unit => unit.pending))
      this.flush()
      return
    }
    if (!reply.ok) {
      if (reply.cause !== undefined) this.degraded(reply.cause, reply.error)
      else if (reply.unit === null) this.log?.error({ err: reply.error }, 'the event log could not commit a group')
      // A 503's message reaches the client: the storage's cause, never an internal error's text.
      const error = reply.unit === null ? new StoreUnavailable(reply.cause ?? 'its commit failed') : Object.assign(new Error(reply.error.message), reply.error)
      if (reply.unit === null) {
        // The storage failed (disk full, I/O error) or the COMMIT did: nothing of the group is
        // durable, so none of its units is acknowledged. The next group tries again.
        for (const unit of group.units) unit.pending.reject(error)
        for (const pending of this.afterNextCommit.splice(0)) pending.reject(error)
        this.abandonInFlight([])
      } else {
        // One unit's appends broke a rule of the log or a projection: the rest run again without
        // it. It may have decided on what another unit of the group was changing (one name
        // registered twice at once): it runs once more after they commit, and decides on what
        // they did (a 409, not a constraint's 500). Alone in a group staged behind another, it
        // may have decided without what that one committed since: it runs once more now. Refused
        // again, or alone with nothing it could not see, it fails.
        const failing = group.units[reply.unit]!.pending
        const others = group.units.filter((_, i) => i !== reply.unit).map(unit => unit.pending)
        if (failing.retried === true || (others.length === 0 && !group.behind)) {
          failing.reject(error)
        } else {
          failing.retried = true
          // Beside others: after they commit. Alone behind a group: now, since that one has committed.
          if (others.length > 0) this.afterNextCommit.push(failing)
          else others.push(failing)
        }
        this.abandonInFlight(others)
      }
      this.flush()
      return
    }
    if (this.currentHealth.status === 'degraded') {
      this.log?.info({ cause: this.currentHealth.cause, since: this.currentHealth.since }, 'the event log records again')
      this.currentHealth = { status: 'ok' }
    }
    group.events.forEach((event, i) => { event.hash = reply.hashes[i]! })
    this.inFlight.shift()
    this.position += group.rows.length
    this.hash = group.events.at(-1)!.hash
    for (const [stream, version] of group.versions) this.committedVersions.set(stream, version)
    for (const unit of group.units) unit.pending.resolve(unit.value)
    const commit: GroupCommit = { units: group.units.length, seconds: reply.seconds, here: true }
    for (const listener of this.listeners) {
      try { listener(group.events, commit) } catch { /* a listener's failure must not undo a commit */ }
    }
    this.queue.unshift(...this.afterAnswer.splice(0), ...this.afterNextCommit.splice(0))
    this.flush()
  }

  /** Told once per episode: every failed group until the next commit is the same fault. */
  private degraded (cause: string, error: { message: string, code?: string }): void {
    if (this.currentHealth.status === 'degraded') return
    this.currentHealth = { status: 'degraded', cause, since: isoTime(this.clock.now()) }
    this.log?.warn({ cause, code: error.code, error: error.message }, `the event log cannot record: ${cause}; writes are refused (503, MQTT messages not acknowledged) until it can`)
  }

  private limited (reply: WriterLimitReply): void {
    this.limits.get(reply.id)?.resolve(reply.maxPageCount)
    this.limits.delete(reply.id)
  }

  private fail (error: Error): void {
    if (this.failure === undefined) {
      const cause = "the log's writer thread stopped"
      this.failure = new StoreUnavailable(cause)
      // For good: unlike a full disk, this one needs a restart.
      this.currentHealth = { status: 'degraded', cause, since: isoTime(this.clock.now()) }
      this.log?.error({ err: error }, `${cause}: every write is refused until the service restarts`)
    }
    const units = [...this.inFlight.flatMap(group => group.units.map(unit => unit.pending)), ...this.queue, ...this.afterAnswer.splice(0), ...this.afterNextCommit.splice(0)]
    this.inFlight = []
    this.queue = []
    for (const pending of units) pending.reject(this.failure)
    for (const limit of this.limits.values()) limit.reject(this.failure)
    this.limits.clear()
    // Reads go on from the replica as it is.
    for (const id of [...this.syncs.keys()]) this.synced(id)
    this.drained?.()
  }

  /** @internal The committed version of a stream (-1: none), cached once read. */
  committedVersion (streamId: string): number {
    let version = this.committedVersions.get(streamId)
    if (version === undefined) {
      version = (this.selectStreamVersion.get(streamId) as number | null) ?? -1
      if (version >= 0) this.committedVersions.set(streamId, version)
    }
    return version
  }

  /** @internal The version of a stream after the groups in flight (-1: none). */
  versionAhead (streamId: string): number {
    return this.versionInFlight(streamId) ?? this.committedVersion(streamId)
  }

  /** @internal The stream's version after the latest group in flight that appends to it, if one does. */
  versionInFlight (streamId: string): number | undefined {
    for (let i = this.inFlight.length - 1; i >= 0; i--) {
      const version = this.inFlight[i]!.versions.get(streamId)
      if (version !== undefined) return version
    }
    return undefined
  }

  /** The position of the next group's first row: after the committed ones and those in flight. */
  private get nextPosition (): number {
    let position = this.position + 1
    for (const group of this.inFlight) position += group.rows.length
    return position
  }
}

/**
 * One unit's view of its group. Its appends go straight into the group (no copies on the hot
 * path); if the unit throws, `undo` takes them out again.
 */
class UnitOfWork implements Transaction {
  private readonly rowsBefore: number
  /** Streams this unit appended to, with the group's version of each before it did. */
  private touched: Array<[string, number | undefined]> | undefined

  constructor (private readonly store: EventStore, private readonly group: Group, private readonly recordedAt: string) {
    this.rowsBefore = group.rows.length
  }

  get now (): number { return this.group.now }

  streamVersion (streamId: string): number {
    return this.group.versions.get(streamId) ?? this.store.versionAhead(streamId)
  }

  append (streamId: string, events: readonly DomainEvent[], options: AppendOptions): RecordedEvent[] {
    const expected = options.expectedVersion
    const own = this.touched?.some(([stream]) => stream === streamId) === true
    // Another unit of this group, or a group in flight, appended to the stream: what this one read is older than that.
    const stale = !own && (this.group.versions.has(streamId) || this.store.versionInFlight(streamId) !== undefined)
    let version = this.streamVersion(streamId)
    if (expected === undefined && stale) throw new RunAfterCommit()
    if (expected !== undefined && expected !== 'any' && (expected === 'no_stream' ? version !== -1 : version !== expected)) {
      if (stale) throw new RunAfterCommit()
      throw new StreamVersionConflict(streamId, String(expected), version)
    }
    if (options.validated !== true) {
      for (const event of events) {
        const valid = eventDefinitions[event.type].schema.safeParse(event.data)
        if (!valid.success) throw new InvalidEvent(event.type, valid.error.message)
      }
    }
    if (!own) {
      if (SEPARATORS.test(streamId)) throw new Error(`a stream id cannot hold control characters: ${JSON.stringify(streamId)}`)
      ;(this.touched ??= []).push([streamId, this.group.versions.get(streamId)])
    }
    const metadata = JSON.stringify(options.metadata)
    const recorded: RecordedEvent[] = []
    for (const event of events) {
      version += 1
      const position = this.group.first + this.group.rows.length
      this.group.rows.push(streamId + FIELD + version + FIELD + event.type + FIELD + encodeData(event.type, streamId, event.data) + FIELD + metadata)
      const recordedEvent = {
        type: event.type,
        data: event.data,
        position,
        stream_id: streamId,
        stream_version: version,
        schema_version: eventDefinitions[event.type].version,
        recorded_at: this.recordedAt,
        metadata: options.metadata,
        hash: ''
      } as RecordedEvent
      recorded.push(recordedEvent)
      this.group.events.push(recordedEvent)
    }
    this.group.versions.set(streamId, version)
    return recorded
  }

  /** The unit threw: its appends leave the group. */
  undo (): void {
    this.group.rows.length = this.rowsBefore
    this.group.events.length = this.rowsBefore
    for (const [stream, before] of (this.touched ?? []).reverse()) {
      if (before === undefined) this.group.versions.delete(stream)
      else this.group.versions.set(stream, before)
    }
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
  const add = (key: keyof EventFilter, clause: string, value: unknown = filter[key]) => {
    if (filter[key] === undefined) return
    where.push(clause)
    params[key] = value
  }
  add('before', 'position < @before')
  add('stream', 'stream_id = @stream')
  add('type', 'type = @type')
  add('since', 'recorded_at >= @since', Date.parse(filter.since!))
  add('until', 'recorded_at <= @until', Date.parse(filter.until!))
  return { sql: `SELECT * FROM event_rows WHERE ${where.join(' AND ')} ORDER BY position LIMIT @limit`, params }
}
