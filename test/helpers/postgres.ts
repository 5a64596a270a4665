import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

/**
 * A throwaway PostgreSQL cluster for tests: its own temporary folder, listening only on a unix
 * socket in that folder (no TCP at all), trust authentication for the role `devicelog`.
 */
export interface Postgres {
  /** `postgres://devicelog@/devicelog?host=<socket folder, percent-encoded>&port=<port>` (node-postgres and libpq both accept it). */
  url: string
  /** Fast shutdown (SIGINT), wait for the server to exit, then remove the folder. Safe to call twice. */
  stop(): Promise<void>
}

/** The part of a tap test the helper needs: teardown. */
export interface Teardown { teardown(fn: () => unknown): void }

const USER = 'devicelog'
const DATABASE = 'devicelog'
const READY_TIMEOUT_MS = 30_000
const POLL_MS = 25

const hasServer = (bin: string): boolean => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres'))

/** The bin folder of a PostgreSQL server: `PG_BIN` when set, else the newest `/usr/lib/postgresql/<major>/bin`. */
export function findPostgres (): string | undefined {
  const fromEnv = process.env.PG_BIN
  if (fromEnv !== undefined && fromEnv !== '') return hasServer(fromEnv) ? fromEnv : undefined
  const base = '/usr/lib/postgresql'
  let versions: string[]
  try { versions = readdirSync(base) } catch { return undefined }
  return versions
    .filter(version => /^\d+(\.\d+)?$/.test(version))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a))
    .map(version => join(base, version, 'bin'))
    .find(hasServer)
}

/**
 * initdb and postgres refuse to run as root: as root, every server program runs as the `postgres`
 * system user (Node's own setuid, not runuser, so signals reach postgres itself; runuser forks and
 * stands in between).
 */
function identity (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    return { uid, gid }
  } catch {
    throw new Error('running as root, and initdb/postgres refuse to run as root, but there is no `postgres` system user to run them as (Debian\'s postgresql package creates it)')
  }
}

/** The environment without tap's settings and without libpq's PG* variables (which would redirect the tools). */
function serverEnv (): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(_?TAP|NODE_OPTIONS$|PG(?!_BIN$))/.test(key)))
  return { ...env, LC_ALL: 'C', LANG: 'C' }
}

function run (file: string, args: string[], options: SpawnOptions): Promise<{ code: number | null, output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout!.on('data', chunk => { output += chunk })
    child.stderr!.on('data', chunk => { output += chunk })
    child.once('error', reject)
    child.once('close', code => resolve({ code, output }))
  })
}

const exitOf = (child: ChildProcess): Promise<void> => new Promise(resolve => {
  if (child.exitCode !== null || child.signalCode !== null) resolve()
  else child.once('exit', () => resolve())
})

/** Servers still running when this process exits (a test that never reached its teardown): quit them. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) { try { child.kill('SIGQUIT') } catch {} }
})

export async function startPostgres (): Promise<Postgres> {
  const bin = findPostgres()
  if (bin === undefined) {
    throw new Error('no PostgreSQL server found: set PG_BIN to a folder holding initdb and postgres, or install Debian\'s postgresql package (.ci/run does)')
  }
  const owner = identity()
  // The folder holds the socket (and its lock file) next to the data folder; the socket's path must stay under ~107 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-pg-'))
  const data = join(dir, 'data')
  const port = 20000 + Math.floor(Math.random() * 40000)
  const options: SpawnOptions = { cwd: dir, env: serverEnv(), ...owner }
  let child: ChildProcess | undefined
  let log = ''

  const stop = async (): Promise<void> => {
    if (child !== undefined) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT') // fast shutdown: ends sessions, checkpoints, exits
        const timer = setTimeout(() => child?.kill('SIGQUIT'), 30_000)
        await exitOf(child)
        clearTimeout(timer)
      }
      running.delete(child)
    }
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    if (owner !== undefined) chownSync(dir, owner.uid, owner.gid)
    const init = await run(join(bin, 'initdb'), ['-D', data, '-U', USER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], options)
    if (init.code !== 0) throw new Error(`initdb failed (exit ${init.code}):\n${init.output}`)

    const server = spawn(join(bin, 'postgres'), [
      '-D', data,
      '-k', dir,
      '-p', String(port),
      '-c', 'listen_addresses=',
      '-c', 'shared_buffers=16MB',
      '-c', 'max_connections=50'
    ], { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
    child = server
    running.add(server)
    const keep = (chunk: Buffer): void => { log = (log + chunk.toString()).slice(-16_384) }
    server.stdout!.on('data', keep)
    server.stderr!.on('data', keep)
    let failed: Error | undefined
    server.once('error', error => { failed = error })

    const deadline = Date.now() + READY_TIMEOUT_MS
    for (;;) {
      if (failed !== undefined) throw failed
      if (server.exitCode !== null || server.signalCode !== null) {
        throw new Error(`postgres exited (${server.exitCode ?? server.signalCode}) before accepting connections:\n${log}`)
      }
      const ready = await run(join(bin, 'pg_isready'), ['-q', '-h', dir, '-p', String(port), '-U', USER, '-d', 'postgres'], options)
      if (ready.code === 0) break
      if (Date.now() > deadline) {
        throw new Error(`postgres did not accept connections within ${READY_TIMEOUT_MS / 1000} s (pg_isready exit ${ready.code}):\n${log}`)
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }

    const admin = new pg.Client({ host: dir, port, user: USER, database: 'postgres' })
    await admin.connect()
    try { await admin.query(`CREATE DATABASE ${DATABASE}`) } finally { await admin.end() }
  } catch (error) {
    await stop()
    throw error
  }

  let stopping: Promise<void> | undefined
  return {
    url: `postgres://${USER}@/${DATABASE}?host=${encodeURIComponent(dir)}&port=${port}`,
    stop: () => (stopping ??= stop())
  }
}

/** A cluster for one tap test: stopped (and its folder removed) at the test's teardown. Resolves to its url. */
export async function withPostgres (t: Teardown): Promise<string> {
  const server = await startPostgres()
  t.teardown(() => server.stop())
  return server.url
}
