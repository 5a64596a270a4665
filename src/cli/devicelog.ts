import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { backupDatabase } from '../store/backup.ts'
import { checkCheckpoints, checkExpectedHead, checkpointKeyPath, headText, parseHead, publicKeyText, readCheckpointKey } from '../store/checkpoints.ts'
import { openDatabase } from '../store/database.ts'
import { eventQuery } from '../store/event-store.ts'
import { rebuildProjections } from '../store/projection.ts'
import { decodeRow, isoTime, type EventRow } from '../store/recorded-event.ts'
import { copyPostgresLog, isPostgresUrl } from '../store/postgres/copy.ts'
import { verifyChainInParallel } from '../store/verify.ts'
import { allProjections } from '../projections.ts'

const usage = `usage: devicelog <command> [options]
  replay  [--database PATH] --out PATH [--until POSITION|ISO]
                                         rebuild every projection from the log into a fresh database;
                                         --until: from the log as it was then (events up to POSITION,
                                         or up to the first recorded after the instant), and only those
  verify  [--database PATH] [--expect POSITION:HASH] [--public-key KEY]...
                                         walk the hash chain, then check the signed checkpoints (under
                                         KEY, default the key file beside the database) and the head
                                         you kept; exit 1 at the first broken position
  backup  [--database PATH] --out FILE   a consistent copy of the log, even while the service runs;
                                         its chain verified, else removed and exit 1
  export  [--database PATH] [--stream ID] [--type TYPE] [--after POS] [--before POS]
          [--since ISO] [--until ISO]    events as NDJSON on standard output
The database defaults to $DATABASE_PATH, else data/devicelog.db. A PostgreSQL url
(--database postgres://user@host/db) is read from one snapshot into a temporary SQLite copy, rows
and hashes unchanged, and the command runs on that copy.`

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    database: { type: 'string' },
    out: { type: 'string' },
    stream: { type: 'string' },
    type: { type: 'string' },
    after: { type: 'string' },
    before: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    expect: { type: 'string' },
    'public-key': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' }
  }
})

const database = values.database ?? process.env.DATABASE_PATH ?? 'data/devicelog.db'
/** The SQLite log the command reads: the database given, or the copy of a PostgreSQL one. */
let databasePath = database

function fail (message: string): never {
  process.stderr.write(`devicelog: ${message}\n`)
  process.exit(2)
}

function openSource () {
  if (!existsSync(databasePath)) fail(`no database at ${databasePath}`)
  return openDatabase(databasePath, 'readonly')
}

function progressBar (total: number) {
  const bar = new cliProgress.SingleBar({
    format: '{bar} {percentage}% | {value}/{total} events | {speed} events/s',
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 2000
  }, cliProgress.Presets.shades_classic)
  bar.start(total, 0, { speed: 0 })
  return bar
}

/**
 * A fresh file that nobody reads until it is complete is built as bulk loads are: no journal on disk,
 * no fsync, the log copied by SQLite itself (set-based, the rows unchanged, hashes included),
 * its indexes built after the rows, and the projections folded over it in one transaction.
 * With --until, the log is copied up to that point only: the file is the log as it was then.
 */
function replay (): void {
  if (values.out === undefined) fail('replay needs --out PATH (a fresh database)')
  if (existsSync(values.out)) fail(`${values.out} exists: replay writes a fresh database`)
  const source = openSource()
  const until = values.until === undefined ? undefined : lastPosition(source)
  source.close()
  const target = openDatabase(values.out, 'bulk')
  const started = process.hrtime.bigint()
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9
  target.prepare('ATTACH DATABASE ? AS source').run(databasePath)
  // The log's indexes are built after its rows, from the rows up to the point only, read by
  // position (the primary key): nothing after it is read. The whole log is copied by a bare
  // `INSERT ... SELECT *`, which SQLite carries out record by record without decoding them (its
  // transfer optimization): about a third faster than a bounded copy of the same rows.
  const indexes = target.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL").all() as Array<{ name: string, sql: string }>
  for (const { name } of indexes) target.exec(`DROP INDEX ${name}`)
  if (until === undefined) target.exec('INSERT INTO events SELECT * FROM source.events')
  else target.prepare('INSERT INTO events SELECT * FROM source.events WHERE position <= ? ORDER BY position').run(until)
  // The log as copied: a running service may have appended since it was opened.
  const total = until ?? lastPosition(target)
  const bar = progressBar(total)
  for (const { sql } of indexes) target.exec(sql)
  target.exec('INSERT INTO event_types SELECT * FROM source.event_types')
  // The streams the copied rows name, by the index: a replay of the past names no later device.
  target.exec(`INSERT INTO streams SELECT * FROM source.streams s WHERE EXISTS (SELECT 1 FROM main.events e WHERE e.stream = s.id);
    DETACH DATABASE source;`)
  const recordVersion = target.prepare('INSERT OR REPLACE INTO projection_versions (name, version) VALUES (?, ?)')
  for (const projection of allProjections) recordVersion.run(projection.name, projection.version)
  rebuildProjections(target, allProjections, position => {
    bar.update(position, { speed: Math.round(position / Math.max(elapsed(), 1e-9)) })
  })
  bar.update(total, { speed: Math.round(total / Math.max(elapsed(), 1e-9)) })
  bar.stop()
  target.close()
  const seconds = elapsed()
  const upTo = values.until === undefined ? '' : ` (until position ${total})`
  process.stdout.write(`replayed ${total} events into ${values.out}${upTo} in ${seconds.toFixed(2)} s (${Math.round(total / Math.max(seconds, 1e-9))} events/s)\n`)
}

/**
 * The last position to replay: the log's head; with --until, that position, or the last event
 * before the first one recorded after the instant (found by reading up to it, and no further).
 */
function lastPosition (db: ReturnType<typeof openDatabase>): number {
  const head = (db.prepare('SELECT max(position) FROM events').pluck().get() as number | null) ?? 0
  const until = values.until
  if (until === undefined) return head
  if (/^\d+$/.test(until)) {
    const position = Number(until)
    if (position < 1 || position > head) fail(`--until ${until}: the log holds positions 1 to ${head}`)
    return position
  }
  if (!ISO_INSTANT.test(until) || Number.isNaN(Date.parse(until))) {
    fail(`--until takes a position (a whole number) or an ISO 8601 instant with its zone (2026-01-01T12:00:00Z), not ${until}`)
  }
  const instant = Date.parse(until)
  const after = db.prepare('SELECT position FROM events WHERE recorded_at > ? ORDER BY position LIMIT 1').pluck().get(instant) as number | undefined
  const position = after === undefined ? head : after - 1
  if (position < 1) {
    const first = db.prepare('SELECT recorded_at FROM events WHERE position = 1').pluck().get() as number | undefined
    fail(`--until ${until}: nothing was recorded by then${first === undefined ? '' : ` (the log begins at ${isoTime(first)})`}`)
  }
  return position
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/

async function verify (): Promise<void> {
  openSource().close()
  const expected = values.expect === undefined ? undefined : parseHead(values.expect)
  if (values.expect !== undefined && expected === undefined) fail(`--expect takes a head as verify prints it, <position>:<hash> (64 hex digits), not ${values.expect}`)
  const trusted = trustedKeys()
  const started = process.hrtime.bigint()
  let bar: ReturnType<typeof progressBar> | undefined
  const result = await verifyChainInParallel(databasePath, (checked, total) => {
    if (total <= 50_000) return
    bar ??= progressBar(total)
    bar.update(checked, { speed: Math.round(checked / (Number(process.hrtime.bigint() - started) / 1e9)) })
  })
  bar?.stop()
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (!result.ok) {
    process.stdout.write(`BROKEN at position ${result.position}: ${result.reason}\n`)
    process.exit(1)
  }
  process.stdout.write(`OK ${result.count} events, head ${headText({ position: result.count, hash: result.head })} (${Math.round(result.count / Math.max(seconds, 1e-9))} events/s)\n`)
  const db = openSource()
  let held = true
  if (expected !== undefined) {
    const kept = checkExpectedHead(db, expected, result.count)
    if (kept.ok) process.stdout.write(`EXPECTED ${headText(expected)} holds: the first ${expected.position} events are those that had that head\n`)
    else process.stdout.write(`DIFFERS at position ${kept.position}: ${kept.reason}\n`)
    held &&= kept.ok
  }
  const checkpoints = checkCheckpoints(db, result.count, trusted.keys)
  db.close()
  const signers = checkpoints.keys.length === 0 ? '' : `, signed by ${checkpoints.keys.join(', ')}`
  const last = checkpoints.last === undefined ? '' : `; the last at position ${checkpoints.last.at}, head ${checkpoints.last.head} signed at ${checkpoints.last.signed_at}`
  if (checkpoints.broken !== undefined) {
    const before = checkpoints.holding === 0 ? '' : ` (the ${checkpoints.holding} before it hold${last})`
    process.stdout.write(`CHECKPOINT BROKEN at position ${checkpoints.broken.position}: ${checkpoints.broken.reason}${before}\n`)
    held = false
  } else if (checkpoints.holding === 0) {
    process.stdout.write('checkpoints: none\n')
  } else {
    process.stdout.write(`checkpoints: ${checkpoints.holding} hold${signers}${last}\n`)
  }
  process.stdout.write(trusted.keys.length === 0
    ? `public key: none known (no ${checkpointKeyPath(databasePath)}, no --public-key): each checkpoint is checked under the key it names\n`
    : `public key: ${trusted.keys.join(', ')} (${trusted.from})\n`)
  if (!held) process.exit(1)
}

/** The keys checkpoints must be signed with: --public-key, else the key file beside the database. */
function trustedKeys (): { keys: string[], from: string } {
  const given = values['public-key'] ?? []
  if (given.length > 0) return { keys: given, from: '--public-key' }
  const path = checkpointKeyPath(databasePath)
  let key
  try {
    key = readCheckpointKey(path)
  } catch (error) {
    fail(`cannot read the checkpoint key ${path} (${(error as Error).message}): give its public key with --public-key`)
  }
  return key === undefined ? { keys: [], from: '' } : { keys: [publicKeyText(key)], from: path }
}

async function backup (): Promise<void> {
  if (values.out === undefined) fail('backup needs --out FILE (a new file)')
  if (existsSync(values.out)) fail(`${values.out} exists: backup writes a new file`)
  openSource().close()
  const started = process.hrtime.bigint()
  let bar: ReturnType<typeof progressBar> | undefined
  let result: Awaited<ReturnType<typeof backupDatabase>>
  try {
    result = await backupDatabase(databasePath, values.out, (checked, total) => {
      if (total <= 50_000) return
      bar ??= progressBar(total)
      bar.update(checked, { speed: Math.round(checked / (Number(process.hrtime.bigint() - started) / 1e9)) })
    })
  } catch (error) {
    process.stderr.write(`devicelog: backup to ${values.out} failed: ${(error as Error).message}\n`)
    process.exit(1)
  }
  bar?.stop()
  if (result.ok) {
    process.stdout.write(`backup: ${result.count} events, head ${result.head}, ${result.bytes} bytes, chain OK -> ${values.out}\n`)
  } else {
    process.stdout.write(`BROKEN at position ${result.position}: ${result.reason}; ${values.out} removed\n`)
    process.exit(1)
  }
}

function exportEvents (): void {
  const db = openSource()
  const number = (value: string | undefined, name: string) => {
    if (value === undefined) return undefined
    const n = Number(value)
    if (!Number.isInteger(n) || n < 0) fail(`--${name} takes a position (a whole number)`)
    return n
  }
  const { sql, params } = eventQuery({
    after: number(values.after, 'after'),
    before: number(values.before, 'before'),
    stream: values.stream,
    type: values.type,
    since: values.since,
    until: values.until
  })
  for (const row of db.prepare(sql).iterate(params)) {
    const event = decodeRow(row as EventRow)
    process.stdout.write(JSON.stringify(event) + '\n')
  }
  db.close()
}

const commands: Record<string, () => void | Promise<void>> = { replay, verify, backup, export: exportEvents }
const command = positionals[0]
if (values.help === true || command === undefined) {
  process.stdout.write(usage + '\n')
  process.exit(command === undefined && values.help !== true ? 2 : 0)
}
const run = commands[command]
if (run === undefined) fail(`unknown command ${command}\n${usage}`)
if (isPostgresUrl(database)) databasePath = await copyFromPostgres(database)
await run()

/** A PostgreSQL log, copied into a temporary SQLite file (removed at exit) from one snapshot. */
async function copyFromPostgres (url: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-postgres-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'log.db')
  const started = process.hrtime.bigint()
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9
  let bar: ReturnType<typeof progressBar> | undefined
  let copied: number
  try {
    copied = await copyPostgresLog(url, path, (position, total) => {
      if (total <= 50_000) return
      bar ??= progressBar(total)
      bar.update(position, { speed: Math.round(position / Math.max(seconds(), 1e-9)) })
    })
  } catch (error) {
    fail(`cannot read the log from PostgreSQL: ${(error as Error).message}`)
  }
  bar?.stop()
  process.stderr.write(`copied ${copied} events from PostgreSQL in ${seconds().toFixed(2)} s\n`)
  return path
}
