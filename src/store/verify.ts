import { availableParallelism } from 'node:os'
import { parentPort, Worker, workerData } from 'node:worker_threads'
import { namesById, openDatabase, type Db } from './database.ts'
import { chainHashHex, GENESIS_HASH, isoTime } from './chain.ts'
import { threadExecArgv } from './thread-bundle.ts'

export type VerifyResult =
  | { ok: true, count: number, head: string }
  | { ok: false, position: number, reason: string }

/** Rows read per step: the live service yields to the event loop between steps. */
const STEP = 5000

type RawRow = [number, number, number, number, number, number, string, string, string]

/**
 * Checks rows (after, until] of the chain: each row's hash must be the hash of its predecessor's
 * stored hash and the row itself, and positions must follow each other. Since every row is
 * checked against the hash stored before it, ranges can be checked apart, in any order.
 */
class RangeCheck {
  private readonly rows
  private readonly streams: string[]
  private readonly types: string[]
  private lastTime = -1
  private lastIso = ''
  previousHash: string
  position: number

  constructor (db: Db, after: number, readonly until = Number.MAX_SAFE_INTEGER, names = namesById(db)) {
    // The hash as hex text, made by SQLite: cheaper than a Buffer per row.
    this.rows = db.prepare(`SELECT position, stream, stream_version, type, schema_version, recorded_at, data, metadata, lower(hex(hash))
      FROM events WHERE position > ? AND position <= ? ORDER BY position LIMIT ?`).raw()
    this.streams = names.streams
    this.types = names.types
    const before = after === 0 ? undefined : db.prepare('SELECT hash FROM events WHERE position = ?').pluck().get(after) as Buffer | undefined
    this.previousHash = before?.toString('hex') ?? GENESIS_HASH
    this.position = after
    if (after > 0 && before === undefined) this.position = -after
  }

  /** The next step: 'more', or the verdict on the range. */
  step (): VerifyResult | 'more' {
    if (this.position < 0) return { ok: false, position: -this.position, reason: `position ${-this.position} is missing` }
    const rows = this.rows.all(this.position, this.until, STEP) as RawRow[]
    for (const [position, stream, version, type, schemaVersion, recordedAt, data, metadata, hash] of rows) {
      if (position !== this.position + 1) return { ok: false, position: this.position + 1, reason: `position ${this.position + 1} is missing` }
      if (recordedAt !== this.lastTime) { this.lastTime = recordedAt; this.lastIso = isoTime(recordedAt) }
      const expected = chainHashHex(this.previousHash, position, this.streams[stream]!, version, this.types[type]!, schemaVersion, this.lastIso, data, metadata)
      if (expected !== hash) return { ok: false, position, reason: 'hash does not match the row and its predecessor' }
      this.previousHash = hash
      this.position = position
    }
    return rows.length === STEP && this.position < this.until ? 'more' : { ok: true, count: this.position, head: this.previousHash }
  }
}

/** Walk the hash chain from the first event; report the first row that does not hold. */
export function verifyChain (db: Db, onProgress: (position: number) => void = () => {}): VerifyResult {
  const check = new RangeCheck(db, 0)
  for (;;) {
    const result = check.step()
    if (result !== 'more') return result
    onProgress(check.position)
  }
}

/** The same walk for the running service: between steps, MQTT and HTTP go on. */
export async function verifyChainInSteps (db: Db): Promise<VerifyResult> {
  const check = new RangeCheck(db, 0)
  for (;;) {
    const result = check.step()
    if (result !== 'more') return result
    await new Promise(resolve => setImmediate(resolve))
  }
}

/** Positions checked per claim: small enough that threads finish together, large enough to cost nothing to claim. */
const CHUNK = 20_000

/** What every thread shares: the next chunk to claim, and how many rows were checked. */
interface ChunkTask { path: string, last: number, shared: SharedArrayBuffer }

/**
 * The chain checked by every core at once: threads claim chunks of positions in turn until none
 * is left (so a thread that started late simply checks fewer), and the first broken row of the
 * lowest broken chunk is the verdict, as a single walk would find it.
 */
export async function verifyChainInParallel (path: string, onProgress: (checked: number, total: number) => void = () => {}): Promise<VerifyResult> {
  const db = openDatabase(path, 'readonly')
  const last = (db.prepare('SELECT max(position) FROM events').pluck().get() as number | null) ?? 0
  const head = last === 0 ? undefined : (db.prepare('SELECT hash FROM events WHERE position = ?').pluck().get(last) as Buffer)
  db.close()
  const task: ChunkTask = { path, last, shared: new SharedArrayBuffer(8) }
  const threads = Math.max(1, Math.min(availableParallelism(), Math.ceil(last / (2 * CHUNK))))
  const others = Array.from({ length: threads - 1 }, () => new Promise<VerifyResult[]>((resolve, reject) => {
    const worker = new Worker(new URL('./verify-thread.mjs', import.meta.url), { workerData: task, execArgv: threadExecArgv() })
    worker.once('message', (broken: VerifyResult[]) => { resolve(broken); void worker.terminate() })
    worker.once('error', reject)
  }))
  const checked = new Int32Array(task.shared)
  const mine = checkChunks(task, () => onProgress(Atomics.load(checked, 1), last))
  const broken = [...mine, ...(await Promise.all(others)).flat()] as Array<Extract<VerifyResult, { ok: false }>>
  if (broken.length > 0) return broken.reduce((first, result) => result.position < first.position ? result : first)
  return { ok: true, count: last, head: head?.toString('hex') ?? GENESIS_HASH }
}

/** Claims and checks chunks until none is left; returns the broken ones' verdicts. */
function checkChunks (task: ChunkTask, onChunk: () => void): VerifyResult[] {
  const db = openDatabase(task.path, 'readonly')
  const shared = new Int32Array(task.shared)
  const names = namesById(db)
  const broken: VerifyResult[] = []
  try {
    for (let chunk = Atomics.add(shared, 0, 1); chunk * CHUNK < task.last; chunk = Atomics.add(shared, 0, 1)) {
      const until = Math.min(task.last, (chunk + 1) * CHUNK)
      const check = new RangeCheck(db, chunk * CHUNK, until, names)
      let result: VerifyResult | 'more'
      while ((result = check.step()) === 'more');
      // A chunk whose last rows are missing is broken where the next should be.
      if (result.ok && result.count !== until) result = { ok: false, position: result.count + 1, reason: `position ${result.count + 1} is missing` }
      if (!result.ok) broken.push(result)
      Atomics.add(shared, 1, until - chunk * CHUNK)
      onChunk()
    }
  } finally {
    db.close()
  }
  return broken
}

if (parentPort !== null && (workerData as ChunkTask | undefined)?.shared !== undefined) {
  parentPort.postMessage(checkChunks(workerData as ChunkTask, () => {}))
}
