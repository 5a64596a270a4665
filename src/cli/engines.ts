// The engines several nodes run on, started on this machine from Debian's packages: PostgreSQL
// (postgresql), Redis (redis-server) and HAProxy (haproxy). Used by `npm run cluster`, the
// cluster benchmark and the tests; a real site runs them as its own services instead.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import pg from 'pg'

/** A running engine: where to reach it, and how to stop it (safe to call twice). */
export interface Engine {
  url: string
  stop(): Promise<void>
}

const PG_USER = 'devicelog'
const PG_DATABASE = 'devicelog'
const READY_TIMEOUT_MS = 30_000
const POLL_MS = 25

/** A free TCP port on 127.0.0.1 (asked of the kernel, then handed to the engine). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

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
function postgresIdentity (): { uid: number, gid: number } | undefined {
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
function engineEnv (): NodeJS.ProcessEnv {
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

/** Engines still running when this process exits (a test killed before its teardown): stopped with it. */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) { try { child.kill('SIGKILL') } catch {} }
})

/**
 * Engines and nodes started from now on run in their own process group: a Ctrl-C at the terminal
 * reaches only the process that started them, which stops them in order (the nodes before the log).
 */
let ownGroups = false
export function shieldFromTerminalSignals (): void { ownGroups = true }

/** Stop a child with `signal`, and kill it if it has not exited within 30 s. */
async function stopChild (child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    await exitOf(child)
    clearTimeout(timer)
  }
  running.delete(child)
}

/** Spawn an engine and resolve once `ready()` says so; its output is kept for the error if it exits first. */
async function startChild (file: string, args: string[], options: SpawnOptions, ready: (output: string) => boolean | Promise<boolean>): Promise<ChildProcess> {
  const child = spawn(file, args, { ...options, detached: ownGroups, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-16_384) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  let failed: Error | undefined
  child.once('error', error => { failed = error })
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    if (failed !== undefined) throw new Error(`${file}: ${failed.message}`)
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${file} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`)
    if (await ready(output)) return child
    if (Date.now() > deadline) {
      await stopChild(child, 'SIGKILL')
      throw new Error(`${file} was not ready within ${READY_TIMEOUT_MS / 1000} s:\n${output}`)
    }
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
}

/**
 * PostgreSQL listening only on a unix socket in its folder (no TCP at all), trust authentication
 * for the role `devicelog`, database `devicelog`. With `dir`, the cluster lives there and is kept
 * (started again as it was); without, it is a throwaway one in a temporary folder removed at stop.
 */
export async function startPostgres (options: { dir?: string, port?: number } = {}): Promise<Engine> {
  const bin = findPostgres()
  if (bin === undefined) {
    throw new Error('no PostgreSQL server found: set PG_BIN to a folder holding initdb and postgres, or install Debian\'s postgresql package (.ci/run does)')
  }
  const owner = postgresIdentity()
  const keep = options.dir !== undefined
  // The folder holds the socket (and its lock file) next to the data folder; the socket's path must stay under ~107 bytes.
  const dir = keep ? resolve(options.dir!) : mkdtempSync(join(tmpdir(), 'devicelog-pg-'))
  mkdirSync(dir, { recursive: true })
  const data = join(dir, 'data')
  const port = options.port ?? await freePort()
  const spawnOptions: SpawnOptions = { cwd: dir, env: engineEnv(), ...owner }
  let child: ChildProcess | undefined
  const stop = async (): Promise<void> => {
    // SIGINT: fast shutdown (ends sessions, checkpoints, exits).
    if (child !== undefined) await stopChild(child, 'SIGINT')
    if (!keep) rmSync(dir, { recursive: true, force: true })
  }
  try {
    if (owner !== undefined) chownSync(dir, owner.uid, owner.gid)
    const fresh = !existsSync(join(data, 'PG_VERSION'))
    if (fresh) {
      const init = await run(join(bin, 'initdb'), ['-D', data, '-U', PG_USER, '--auth=trust', '--encoding=UTF8', '--locale=C', ...(keep ? [] : ['--no-sync'])], spawnOptions)
      if (init.code !== 0) {
        const hint = owner !== undefined && /Permission denied/.test(init.output)
          ? `\n(as root, PostgreSQL runs as the postgres user, which must be able to reach ${dir}: every folder above it needs o+x)`
          : ''
        throw new Error(`initdb failed (exit ${init.code}):\n${init.output}${hint}`)
      }
    }
    child = await startChild(join(bin, 'postgres'), [
      '-D', data, '-k', dir, '-p', String(port),
      '-c', 'listen_addresses=', '-c', 'shared_buffers=16MB', '-c', 'max_connections=50'
    ], spawnOptions, async () =>
      (await run(join(bin, 'pg_isready'), ['-q', '-h', dir, '-p', String(port), '-U', PG_USER, '-d', 'postgres'], spawnOptions)).code === 0)
    if (fresh) {
      const admin = new pg.Client({ host: dir, port, user: PG_USER, database: 'postgres' })
      await admin.connect()
      try { await admin.query(`CREATE DATABASE ${PG_DATABASE}`) } finally { await admin.end() }
    }
  } catch (error) {
    await stop()
    throw error
  }
  let stopping: Promise<void> | undefined
  return {
    url: `postgres://${PG_USER}@/${PG_DATABASE}?host=${encodeURIComponent(dir)}&port=${port}`,
    stop: () => (stopping ??= stop())
  }
}

/** Redis on 127.0.0.1 and a free port, nothing saved to disk (it only carries publishes between brokers). */
export async function startRedis (): Promise<Engine> {
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-redis-'))
  const port = await freePort()
  let child: ChildProcess
  try {
    child = await startChild('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      {}, output => output.includes('Ready to accept connections'))
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`${(error as Error).message} (Debian: apt-get install redis-server)`)
  }
  let stopping: Promise<void> | undefined
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => (stopping ??= stopChild(child, 'SIGTERM').then(() => rmSync(dir, { recursive: true, force: true })))
  }
}

export interface BalancedNode { name: string, httpPort: number, mqttPort: number }

/**
 * HAProxy in front of the nodes: MQTT as TCP (each connection to the node with the fewest, led by
 * a PROXY header with the device's address), HTTP (WebSockets and server-sent events included) by
 * round robin with X-Forwarded-For; the nodes trust both from it (TRUST_PROXY). A node that stops
 * answering is out within two seconds; a connection refused meanwhile is sent to another.
 */
export function haproxyConfig ({ host, httpPort, mqttPort, nodes }: { host: string, httpPort: number, mqttPort: number, nodes: BalancedNode[] }): string {
  const servers = (port: (node: BalancedNode) => number, check: string) =>
    nodes.map(node => `  server ${node.name} 127.0.0.1:${port(node)} ${check}`).join('\n')
  // No maxconn: HAProxy derives it from the open-files limit (two descriptors a connection).
  return `defaults
  retries 3
  option redispatch
  timeout connect 2s
  # Devices and browsers keep their connections: MQTT keep-alives, WebSockets, event streams.
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h

frontend mqtt
  mode tcp
  bind ${host}:${mqttPort}
  default_backend nodes_mqtt

backend nodes_mqtt
  mode tcp
  balance leastconn
${servers(node => node.mqttPort, 'send-proxy check inter 1s fall 2 rise 1')}

frontend http
  mode http
  bind ${host}:${httpPort}
  option forwardfor
  default_backend nodes_http

backend nodes_http
  mode http
  balance roundrobin
  option httpchk GET /status
${servers(node => node.httpPort, 'check inter 1s fall 2 rise 1')}
`
}

/** HAProxy (Debian's haproxy) in the foreground with this configuration, written to `dir`. */
export async function startHaproxy (dir: string, config: string, ports: number[]): Promise<Engine> {
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'haproxy.cfg')
  writeFileSync(file, config)
  const listening = async () => {
    for (const port of ports) {
      const connected = await new Promise<boolean>(resolve => {
        const socket = new Socket()
        socket.once('connect', () => { socket.destroy(); resolve(true) })
        socket.once('error', () => resolve(false))
        socket.connect(port, '127.0.0.1')
      })
      if (!connected) return false
    }
    return true
  }
  let child: ChildProcess
  try {
    child = await startChild('haproxy', ['-f', file, '-db'], {}, listening)
  } catch (error) {
    throw new Error(`${(error as Error).message} (Debian: apt-get install haproxy)`)
  }
  let stopping: Promise<void> | undefined
  return { url: file, stop: () => (stopping ??= stopChild(child, 'SIGTERM')) }
}

/** A devicelog node: `src/server.ts` as its own process. */
export interface NodeProcess {
  child: ChildProcess
  url: string
  mqttUrl: string
  exited: Promise<number | null>
}

const root = resolve(import.meta.dirname, '../..')

/** The environment without tap's own settings, which are for test processes, not the service. */
export function serviceEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(_?TAP|NODE_OPTIONS$)/.test(key)))
  return { ...env, ...extra }
}

/**
 * Start a node (`PORT`, `MQTT_PORT` and the rest from `env`) and resolve once both its HTTP and
 * MQTT listeners are up; each line it logs goes to `onLine`.
 */
export function startNode (env: Record<string, string>, onLine: (line: string) => void = () => {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: root,
    env: serviceEnv({ PORT: '0', MQTT_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }),
    detached: ownGroups,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  const exited = new Promise<number | null>(resolve => child.once('exit', code => { running.delete(child); resolve(code) }))
  return new Promise((resolve, reject) => {
    let url: string | undefined
    let stderr = ''
    child.stderr!.on('data', chunk => { stderr += chunk })
    void exited.then(code => reject(new Error(`the node exited (${code}) before listening: ${stderr}`)))
    let buffered = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (buffered + chunk.toString()).split('\n')
      buffered = lines.pop()!
      for (const line of lines) {
        onLine(line)
        let entry: { msg?: string, mqtt?: string }
        try { entry = JSON.parse(line) } catch { continue }
        const listening = /Server listening at (http:\/\/[^ ]+)/.exec(entry.msg ?? '')
        if (listening !== null) url = listening[1]
        if (entry.mqtt !== undefined && url !== undefined) resolve({ child, url, mqttUrl: entry.mqtt, exited })
      }
    })
  })
}
