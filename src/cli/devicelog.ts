import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { backupDatabase } from '../store/backup.ts'
import { openDatabase } from '../store/database.ts'
import { eventQuery } from '../store/event-store.ts'
import { rebuildProjections } from '../store/projection.ts'
import { decodeRow, type EventRow } from '../store/recorded-event.ts'
import { verifyChainInParallel } from '../store/verify.ts'
import { allProjections } from '../projections.ts'

const usage = `usage: devicelog <command> [options]
  replay  [--database PATH] --out PATH   rebuild every projection from the log into a fresh database
  verify  [--database PATH]              walk the hash chain; exit 1 at the first broken position
  backup  [--database PATH] --out FILE   a consistent copy of the log, even while the service runs;
                                         its chain verified, else removed and exit 1
  export  [--database PATH] [--stream ID] [--type TYPE] [--after POS] [--before POS]
          [--since ISO] [--until ISO]    events as NDJSON on standard output
The database defaults to $DATABASE_PATH, else data/devicelog.db.`

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
    help: { type: 'boolean', short: 'h' }
  }
})

const databasePath = values.database ?? process.env.DATABASE_PATH ?? 'data/devicelog.db'

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
 * A fresh file that nobody reads until it is complete is built as bulk loads are: no journal,
 * no fsync, the log copied by SQLite itself (set-based, the rows unchanged, hashes included),
 * its index built after the rows, and the projections folded over it in one transaction.
 */
function replay (): void {
  if (values.out === undefined) fail('replay needs --out PATH (a fresh database)')
  if (existsSync(values.out)) fail(`${values.out} exists: replay writes a fresh database`)
  openSource().close()
  const target = openDatabase(values.out, 'bulk')
  const started = process.hrtime.bigint()
  const elapsed = () => Number(process.hrtime.bigint() - started) / 1e9
  target.prepare('ATTACH DATABASE ? AS source').run(databasePath)
  const total = target.prepare('SELECT count(*) FROM source.events').pluck().get() as number
  const bar = progressBar(total)
  target.exec(`DROP INDEX events_by_stream;
    INSERT INTO streams SELECT * FROM source.streams;
    INSERT INTO event_types SELECT * FROM source.event_types;
    INSERT INTO events SELECT * FROM source.events ORDER BY position;
    DETACH DATABASE source;
    CREATE UNIQUE INDEX events_by_stream ON events (stream, stream_version);`)
  const recordVersion = target.prepare('INSERT OR REPLACE INTO projection_versions (name, version) VALUES (?, ?)')
  for (const projection of allProjections) recordVersion.run(projection.name, projection.version)
  rebuildProjections(target, allProjections, position => {
    bar.update(position, { speed: Math.round(position / Math.max(elapsed(), 1e-9)) })
  })
  bar.update(total, { speed: Math.round(total / Math.max(elapsed(), 1e-9)) })
  bar.stop()
  target.close()
  const seconds = elapsed()
  process.stdout.write(`replayed ${total} events into ${values.out} in ${seconds.toFixed(2)} s (${Math.round(total / Math.max(seconds, 1e-9))} events/s)\n`)
}

async function verify (): Promise<void> {
  openSource().close()
  const started = process.hrtime.bigint()
  let bar: ReturnType<typeof progressBar> | undefined
  const result = await verifyChainInParallel(databasePath, (checked, total) => {
    if (total <= 50_000) return
    bar ??= progressBar(total)
    bar.update(checked, { speed: Math.round(checked / (Number(process.hrtime.bigint() - started) / 1e9)) })
  })
  bar?.stop()
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (result.ok) {
    process.stdout.write(`OK ${result.count} events, head ${result.head} (${Math.round(result.count / Math.max(seconds, 1e-9))} events/s)\n`)
  } else {
    process.stdout.write(`BROKEN at position ${result.position}: ${result.reason}\n`)
    process.exit(1)
  }
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
await run()
