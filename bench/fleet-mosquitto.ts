// Mosquitto for bench/fleet.ts's comparison: the same fleet against Debian's `mosquitto`,
// anonymous, its retained configurations published once and kept across a restart by its own
// persistence file (written on a clean SIGTERM, as a packaged broker's would be on a restart).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { userInfo } from 'node:os'
import { delimiter, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import mqtt from 'mqtt'

/** How long a starting mosquitto may take to accept a connection, and a stopping one to save its store and exit. */
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 60_000

/** The mosquitto binary on PATH, else Debian's /usr/sbin/mosquitto (sbin is often not on a user's PATH); undefined if neither. */
export function findMosquitto (): string | undefined {
  const candidates = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean).map(dir => join(dir, 'mosquitto')), '/usr/sbin/mosquitto']
  return candidates.find(path => {
    try {
      return statSync(path).isFile() && (statSync(path).mode & 0o111) !== 0
    } catch {
      return false
    }
  })
}

/** "2.0.11", from the first line of `mosquitto -h` (which exits 3). */
export function mosquittoVersion (binary: string): string {
  const { stdout, stderr } = spawnSync(binary, ['-h'], { encoding: 'utf8' })
  return /version (\S+)/.exec(`${stdout}${stderr}`)?.[1] ?? '(unknown version)'
}

/** A port nobody listens on now: the kernel's pick for port 0, released. */
async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** One mosquitto on a fixed port and persistence directory, so that a restart finds its retained messages. */
export class Mosquitto {
  private process: ChildProcess | undefined

  private constructor (
    private readonly binary: string,
    private readonly configFile: string,
    /** The persistence file mosquitto writes when it exits cleanly. */
    readonly persistenceFile: string,
    readonly url: string
  ) {}

  /** Writes the configuration into `dir`; nothing runs until `start`. */
  static async create (binary: string, dir: string): Promise<Mosquitto> {
    mkdirSync(dir, { recursive: true })
    const port = await freePort()
    const configFile = join(dir, 'mosquitto.conf')
    writeFileSync(configFile, [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      // Started as root, mosquitto would switch to the `mosquitto` user and fail to write its
      // persistence file into our directory; as anyone else the option has no effect.
      `user ${userInfo().username}`,
      'persistence true',
      `persistence_location ${dir}/`,
      // 0: no periodic saves during the run; the store is written once, when mosquitto exits.
      'autosave_interval 0',
      // 10,000 clients' connects and disconnects would otherwise fill the terminal.
      'log_dest none',
      ''
    ].join('\n'))
    return new Mosquitto(binary, configFile, join(dir, 'mosquitto.db'), `mqtt://127.0.0.1:${port}`)
  }

  /** Starts it with its soft file limit raised to the hard one (a descriptor per client); resolves with the seconds until it accepted an MQTT connection. */
  async start (): Promise<number> {
    const started = performance.now()
    const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" -c "$1"', this.binary, this.configFile],
      { stdio: ['ignore', 'ignore', 'inherit'] })
    this.process = child
    while (performance.now() - started < START_TIMEOUT_MS) {
      if (!this.running) throw new Error(`mosquitto exited (${child.exitCode ?? child.signalCode}) before it accepted a connection`)
      try {
        const probe = await mqtt.connectAsync(this.url, { reconnectPeriod: 0, connectTimeout: 1000 })
        await probe.endAsync()
        return (performance.now() - started) / 1000
      } catch {
        // Not listening yet: connection refused straight away, so a short pause is enough.
        await delay(20)
      }
    }
    throw new Error(`mosquitto did not accept a connection within ${START_TIMEOUT_MS / 1000} s`)
  }

  /** SIGTERM, then waits for it to save its store and exit; SIGKILL (and an error) if it takes too long. */
  async stop (): Promise<void> {
    const child = this.process
    if (child === undefined || !this.running) return
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    child.kill('SIGTERM')
    const overdue = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    const [code, signal] = await exited
    clearTimeout(overdue)
    if (code !== 0) throw new Error(`mosquitto exited with ${code ?? signal} on SIGTERM`)
  }

  /** For a bench that failed: no mosquitto left behind. */
  kill (): void {
    if (this.running) this.process!.kill('SIGKILL')
  }

  private get running (): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null
  }

  /** Whether the last stop left a store for the next start to load the retained messages from. */
  get saved (): boolean {
    return existsSync(this.persistenceFile)
  }
}

/** One retained QoS 1 message per topic from a single client; resolves once every PUBACK is in. */
export async function publishRetained (url: string, topics: string[], payload: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 })
  try {
    await Promise.all(topics.map(topic => client.publishAsync(topic, payload, { qos: 1, retain: true })))
  } finally {
    await client.endAsync()
  }
}
