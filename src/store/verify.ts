import { availableParallelism } from 'node:os'
import { parentPort, Worker, workerData } from 'node:worker_threads'
import { openDatabase, type Db } from './database.ts'
import { chainHash, GENESIS_HASH, isoTime } from './chain.ts'

export type VerifyResult =
  | { ok: true, count: number, head: string }
  | { ok: false, position: number, reason: string }

/** Rows read per step: the live service yields to the event loop between steps. */
const STEP = 5000

type RawRow = [number, number, number, number, number, number, string, string, Buffer]

/**
 * Checks rows (after, until] of the chain: each row's hash must be the hash of its predecessor's
 * stored hash and the row itself, and positions must follow each other. Since every row is
 * checked against the hash stored before it, ranges can be checked apart, in any order.
 */
class RangeCheck {
  private readonly rows
  private readonly streams: string[] = []
  private readonly types: string[] = []
  private lastTime = -1
  private lastIso = ''
  previousHash: string
  position: number

  constructor (db: Db, after: number, readonly until = Number.MAX_SAFE_INTEGER) {
    this.rows = db.prepare(`SELECT position, stream, stream_version, type, schema_version, recorded_at, data, metadata, hash
      FROM events WHERE position > ? AND position <= ? ORDER BY position LIMIT ?`).raw()
    for (const [id, name] of db.prepare('SELECT id, name FROM streams').raw().all() as Array<[number, string]>) this.streams[id] = name
    for (const [id, name] of db.prepare('SELECT id, name FROM event_types').raw().all() as Array<[number, string]>) this.types[id] = name
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
      const expected = chainHash(this.previousHash, position, this.streams[stream]!, version, this.types[type]!, schemaVersion, this.lastIso, data, metadata)
      if (!expected.equals(hash)) return { ok: false, position, reason: 'hash does not match the row and its predecessor' }
      this.previousHash = hash.toString('hex')
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

interface RangeTask { path: string, after: number, until: number }
type RangeMessage = { progress: number } | { result: VerifyResult }

/**
 * The chain checked by one thread per core, each over its own range of positions: the first
 * broken row of the lowest range is the verdict, as a single walk would find it.
 */
export async function verifyChainInParallel (path: string, onProgress: (checked: number, total: number) => void = () => {}): Promise<VerifyResult> {
  const db = openDatabase(path, 'readonly')
  const last = (db.prepare('SELECT max(position) FROM events').pluck().get() as number | null) ?? 0
  const head = last === 0 ? undefined : (db.prepare('SELECT hash FROM events WHERE position = ?').pluck().get(last) as Buffer)
  db.close()
  const threads = Math.max(1, Math.min(availableParallelism(), Math.ceil(last / 50_000)))
  const size = Math.ceil(last / threads)
  const checked = new Array<number>(threads).fill(0)
  const ranges = Array.from({ length: threads }, (_, i) => ({ path, after: i * size, until: Math.min(last, (i + 1) * size) }))
  const report = (i: number, position: number) => {
    checked[i] = position - ranges[i]!.after
    onProgress(checked.reduce((a, b) => a + b, 0), last)
  }
  // A thread for every range but the first, which this thread checks meanwhile.
  const others = ranges.slice(1).map((task, k) => new Promise<VerifyResult>((resolve, reject) => {
    const worker = new Worker(new URL('./verify-thread.mjs', import.meta.url), { workerData: task satisfies RangeTask })
    worker.on('message', (message: RangeMessage) => {
      if ('progress' in message) return report(k + 1, message.progress)
      resolve(message.result)
      void worker.terminate()
    })
    worker.on('error', reject)
  }))
  const first = checkRange(ranges[0]!, position => report(0, position))
  const results = [first, ...await Promise.all(others)]
  const broken = results.find(result => !result.ok)
  if (broken !== undefined) return broken
  return { ok: true, count: last, head: head?.toString('hex') ?? GENESIS_HASH }
}

/** Checks one range of positions, all of it: rows missing at its end break it where the next should be. */
function checkRange (task: RangeTask, onProgress: (position: number) => void): VerifyResult {
  const db = openDatabase(task.path, 'readonly')
  try {
    const check = new RangeCheck(db, task.after, task.until)
    let result: VerifyResult | 'more'
    while ((result = check.step()) === 'more') onProgress(check.position)
    if (result.ok && result.count !== task.until) return { ok: false, position: result.count + 1, reason: `position ${result.count + 1} is missing` }
    return result
  } finally {
    db.close()
  }
}

if (parentPort !== null && (workerData as RangeTask | undefined)?.until !== undefined) {
  const port = parentPort
  const result = checkRange(workerData as RangeTask, progress => port.postMessage({ progress } satisfies RangeMessage))
  port.postMessage({ result } satisfies RangeMessage)
}
