// npm run bench:fleet: "10,000 idle sensors connected at once, each subscribed to its
// configuration: the service's RSS, and the time for all of them to reconnect and get their
// configuration after a restart".
// 1. The service on a fresh database; FLEET_SENSORS sensors registered over its HTTP API.
// 2. First connect: every sensor connects (FLEET_CONCURRENCY at a time) from a child process
//    (bench/fleet-clients.ts) and waits for its retained configuration; then the service's RSS
//    with all of them idle.
// 3. Restart storm: the clients go, the service closes, a new one opens the same database (as
//    after a restart) and every sensor connects at once; GET /status is timed meanwhile.
// 4. Mosquitto, when installed (Debian's `mosquitto`; bench/fleet-mosquitto.ts), through the same
//    two phases once devicelog is closed, so that they do not share the cores: one retained
//    configuration per sensor, published once; first connect, anonymous; then the fleet goes,
//    mosquitto stops (SIGTERM: it saves its store) and starts again on the same persistence file,
//    and every sensor connects at once. The report ends with devicelog's times over Mosquitto's.
// FLEET_SENSORS (10000), FLEET_CONCURRENCY (200), FLEET_TIMEOUT_S (300, per connect phase).
// 10,000 sockets need `ulimit -n` above 10,000 in this process (the service's end of each
// connection) and in the child (its end): the child raises its soft limit to the hard one.
import { execSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance } from 'fastify'
import app, { requestIds } from '../src/app.ts'
import { systemClock } from '../src/clock.ts'
import { parseConfig, type Config } from '../src/config.ts'
import type { FleetResult, FleetSensor, FleetSpec } from './fleet-clients.ts'
import { findMosquitto, Mosquitto, mosquittoVersion, publishRetained } from './fleet-mosquitto.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const setting = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const SENSORS = setting('FLEET_SENSORS', 10_000)
const CONCURRENCY = setting('FLEET_CONCURRENCY', 200)
const TIMEOUT_S = setting('FLEET_TIMEOUT_S', 300)
/** Registrations in flight at once: enough for the store to group their commits. */
const REGISTER_CONCURRENCY = 50
/** How long the fleet sits idle before the RSS is read: the connect's garbage and buffers settle. */
const IDLE_MS = 2000
const STATUS_INTERVAL_MS = 50

// A full collection before each RSS reading, so that registration's garbage is not charged to the fleet.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const log = (line: string) => process.stderr.write(line + '\n')
const seconds = (since: number) => (performance.now() - since) / 1000

/** This process's open-file limit, as a shell it starts inherits it. */
function fileLimit (): number {
  const limit = execSync('ulimit -n', { shell: '/bin/sh', encoding: 'utf8' }).trim()
  return limit === 'unlimited' ? Infinity : Number(limit)
}

/** The service as server.ts builds it, on `config`'s database; the MQTT port is a fresh one. */
async function startService (config: Config): Promise<{ service: FastifyInstance, mqttUrl: string }> {
  // A broker working through a storm can hold close() past Fastify's default 10 s: give it two minutes.
  const service = Fastify({ logger: false, pluginTimeout: 120_000, ...requestIds })
  await service.register(app, { config, clock: systemClock })
  await service.ready()
  const mqttUrl = `mqtt://127.0.0.1:${await service.broker.listen(0, '127.0.0.1')}`
  return { service, mqttUrl }
}

/** One user, one network, then SENSORS sensors, REGISTER_CONCURRENCY at a time. */
async function registerFleet (service: FastifyInstance): Promise<FleetSensor[]> {
  const post = async (url: string, token: string | undefined, payload: object) => {
    const response = await service.inject({ method: 'POST', url, payload, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    if (response.statusCode >= 300) throw new Error(`POST ${url}: ${response.statusCode} ${response.body}`)
    return response.json()
  }
  const { access_token: token } = await post('/users', undefined, { username: 'fleet', password: 'fleet-bench' })
  const { network_identifier: network } = await post('/networks', token, { network_name: 'fleet' })
  const register = async (i: number): Promise<FleetSensor> => {
    const sensor = await post('/sensors', token, { sensor_name: `sensor-${i}`, network_identifier: network, configuration: { interval: 5 } })
    return { id: sensor.mqtt.username, password: sensor.mqtt.password }
  }
  const sensors: FleetSensor[] = []
  for (let start = 0; start < SENSORS; start += REGISTER_CONCURRENCY) {
    const chunk = Array.from({ length: Math.min(REGISTER_CONCURRENCY, SENSORS - start) }, (_, k) => register(start + k))
    sensors.push(...await Promise.all(chunk))
  }
  return sensors
}

interface Fleet { child: ChildProcess, result: FleetResult, serviceCpuMs: number }

/**
 * Starts the clients' process and resolves with its result line, once every sensor is
 * configured; the clients stay connected until `endFleet`. Its soft file limit is raised to
 * the hard one first: one descriptor per connection.
 */
async function startFleet (spec: FleetSpec): Promise<Fleet> {
  // This process is the service's: its CPU time while the fleet connects is what the connects cost it.
  const cpu = process.cpuUsage()
  const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"',
    process.execPath, '--import', 'tsx', 'bench/fleet-clients.ts', JSON.stringify(spec)], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout!.setEncoding('utf8')
  const result = await new Promise<FleetResult>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      stdout += chunk
      const end = stdout.indexOf('\n')
      if (end >= 0) resolve(JSON.parse(stdout.slice(0, end)) as FleetResult)
    })
    child.once('exit', code => reject(new Error(`the fleet exited (${code}) before it reported`)))
  })
  const used = process.cpuUsage(cpu)
  return { child, result, serviceCpuMs: (used.user + used.system) / 1000 }
}

/**
 * Closes the clients' stdin; they disconnect and the process exits. Resolves then, or, given
 * devicelog's service, once its broker has seen them all go.
 */
async function endFleet ({ child }: Fleet, service?: FastifyInstance): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit')
    child.stdin!.end()
    await exited
  }
  while (service !== undefined && service.broker.aedes.connectedClients > 0) await delay(50)
}

interface MosquittoRun { version: string, first: FleetResult, restartSeconds: number, storm: FleetResult }

/**
 * Mosquitto through devicelog's two phases with the same sensors, anonymous: their retained
 * configurations published once, first connect CONCURRENCY at a time, then a restart on the
 * same persistence file and every sensor at once. Mosquitto and the fleet are gone on return,
 * failure included.
 */
async function runMosquitto (binary: string, sensors: FleetSensor[]): Promise<MosquittoRun> {
  const version = mosquittoVersion(binary)
  const mosquitto = await Mosquitto.create(binary, join(dir, 'mosquitto'))
  let fleet: Fleet | undefined
  try {
    await mosquitto.start()
    log(`mosquitto ${version}: publishing ${f(SENSORS)} retained configurations...`)
    // The payload devicelog serves a sensor just registered.
    const payload = JSON.stringify({ revision: 0, configuration: { interval: 5 } })
    await publishRetained(mosquitto.url, sensors.map(sensor => `configurations/${sensor.id}`), payload)
    log(`mosquitto first connect: ${f(SENSORS)} sensors, ${f(CONCURRENCY)} at a time...`)
    fleet = await startFleet({ url: mosquitto.url, sensorsFile, concurrency: CONCURRENCY, timeoutSeconds: TIMEOUT_S, anonymous: true })
    const first = fleet.result
    log('mosquitto restart: the fleet disconnects, mosquitto saves its store, exits and starts again...')
    await endFleet(fleet)
    await mosquitto.stop()
    // Without its store the storm would only wait out FLEET_TIMEOUT_S for configurations that never come.
    if (!mosquitto.saved) throw new Error(`mosquitto left no ${mosquitto.persistenceFile} to restore its retained messages from`)
    const restartSeconds = await mosquitto.start()
    log(`mosquitto restart storm: ${f(SENSORS)} sensors at once...`)
    fleet = await startFleet({ url: mosquitto.url, sensorsFile, concurrency: SENSORS, timeoutSeconds: TIMEOUT_S, anonymous: true })
    const storm = fleet.result
    await endFleet(fleet)
    await mosquitto.stop()
    return { version, first, restartSeconds, storm }
  } finally {
    // Nothing left running when a step failed: the clients first, so that they do not count mosquitto's going as failures.
    if (fleet !== undefined) await endFleet(fleet)
    mosquitto.kill()
  }
}

/**
 * Waits until the service is idle: under a half-second of which it spent less than a quarter
 * busy (its threads' CPU). A broker still working through a backlog of subscriptions would
 * otherwise hold `close` past Fastify's 10 s hook timeout. Resolves with the seconds waited.
 */
async function untilIdle (limitSeconds = TIMEOUT_S): Promise<number> {
  const started = performance.now()
  for (;;) {
    const cpu = process.cpuUsage()
    await delay(500)
    const used = process.cpuUsage(cpu)
    // The last half-second was the idle one.
    if ((used.user + used.system) / 1000 < 0.25 * 500 || seconds(started) > limitSeconds) return seconds(started) - 0.5
  }
}

/** The service's resident memory after a full collection. */
function residentBytes (): { rss: number, heap: number } {
  gc()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heap: heapUsed }
}

/**
 * GET /status every STATUS_INTERVAL_MS from a process of its own (bench/fleet-status.ts), from
 * when this resolves (its connection is open) until `stop`, which gives the latencies (ms, sorted)
 * of the requests sent while `fleet` was connecting.
 */
async function startStatusPoller (httpUrl: string): Promise<{ stop(fleet: FleetResult): Promise<number[]> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/fleet-status.ts', httpUrl, String(STATUS_INTERVAL_MS)], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout!.setEncoding('utf8')
  const exited = once(child, 'exit')
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('ready\n')) resolve()
    })
    void exited.then(([code]) => reject(new Error(`the /status poller exited (${code}) before it was ready`)))
  })
  return {
    async stop (fleet: FleetResult) {
      child.stdin!.end()
      const [code] = await exited
      const lines = stdout.trim().split('\n')
      if (code !== 0 || lines.length < 2) throw new Error(`the /status poller exited (${code}): ${stdout}`)
      const ended = fleet.startedAt + fleet.seconds * 1000
      return (JSON.parse(lines.at(-1)!) as Array<[number, number]>)
        .filter(([sentAt]) => sentAt >= fleet.startedAt && sentAt <= ended)
        .map(([, latency]) => latency)
        .sort((a, b) => a - b)
    }
  }
}

interface LogCheck { connected: number, disconnected: number, refused: number, online: number, head: number, groups: number, events: number }

/** The groups this node committed, and the events in them: how well a phase's appends were grouped. */
const commits = { groups: 0, events: 0 }
function countCommits (service: FastifyInstance): void {
  service.store.subscribe((events, commit) => {
    if (!commit.here) return
    commits.groups++
    commits.events += events.length
  })
}
/**
 * What the log says since position `after`: presence events, refused connections and
 * subscriptions, and how many devices its presence projection shows online. A phase is right
 * when every sensor connected exactly once, nothing was refused and all of them show online.
 */
function logCheck (service: FastifyInstance, after: number): LogCheck {
  const db = service.store.db
  const count = (type: string) => db.prepare('SELECT count(*) FROM events WHERE position > ? AND type = (SELECT id FROM event_types WHERE name = ?)').pluck().get(after, type) as number
  return {
    connected: count('DeviceConnected'),
    disconnected: count('DeviceDisconnected'),
    refused: count('ConnectionRefused') + count('SubscriptionRefused'),
    online: db.prepare('SELECT count(*) FROM device_presence WHERE connections > 0').pluck().get() as number,
    head: service.store.headPosition,
    ...commits
  }
}
const checkLine = (check: LogCheck) => {
  const right = check.connected === SENSORS && check.refused === 0 && check.online === SENSORS
  if (!right) process.exitCode = 1
  return `the log: ${f(check.connected)} DeviceConnected, ${f(check.refused)} refused, ${f(check.online)} shown online` +
    (right ? ' (each sensor once, as it should)' : ` (WRONG: ${f(SENSORS)} sensors)`)
}
const groupLine = (from: LogCheck, to: LogCheck) => {
  const groups = to.groups - from.groups
  return `the service committed ${f(to.events - from.events)} events in ${f(groups)} groups (${f((to.events - from.events) / Math.max(1, groups), 1)} a group)`
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0
const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const MB = 2 ** 20
const outcome = (r: FleetResult) => `${f(r.configured)}/${f(SENSORS)} configured` +
  (r.failed > 0 ? `, ${f(r.failed)} failed (${r.errors.join('; ')})` : '') +
  `, per sensor p50 ${f(r.p50 / 1000, 2)} s p99 ${f(r.p99 / 1000, 2)} s max ${f(r.max / 1000, 2)} s` +
  ` (the fleet's own process: ${f(r.clientCpuMs / 1000, 2)} s CPU)`

if (fileLimit() < SENSORS + 1024) {
  log(`warning: ulimit -n is ${fileLimit()}, the service needs one descriptor per sensor: run \`ulimit -n ${SENSORS + 4096}\` first`)
}
const dir = mkdtempSync(join(tmpdir(), 'devicelog-fleet-'))
const config = parseConfig({ DATABASE_PATH: join(dir, 'devicelog.db'), LOG_LEVEL: 'silent' })
const sensorsFile = join(dir, 'sensors.json')

// 1. Registration.
let { service, mqttUrl } = await startService(config)
// Per device, RSS is charged from the empty service: registration's garbage, collected but
// kept by the allocator, would otherwise hide the connections (the heap shows them).
const empty = residentBytes()
log(`registering ${f(SENSORS)} sensors...`)
const registering = performance.now()
const sensors = await registerFleet(service)
writeFileSync(sensorsFile, JSON.stringify(sensors))
const registerSeconds = seconds(registering)

// 2. First connect, then the fleet idle.
const before = residentBytes()
const registered = service.store.headPosition
countCommits(service)
const beforeFirst = logCheck(service, registered)
log(`first connect: ${f(SENSORS)} sensors, ${f(CONCURRENCY)} at a time...`)
const first = await startFleet({ url: mqttUrl, sensorsFile, concurrency: CONCURRENCY, timeoutSeconds: TIMEOUT_S })
await delay(IDLE_MS)
const idle = residentBytes()
const connectedIdle = service.broker.aedes.connectedClients
const firstCheck = logCheck(service, registered)

// 3. Restart storm: the clients go, the service restarts, all of them come back at once.
log('restart: the fleet disconnects, the service closes and opens the same database...')
await endFleet(first, service)
await untilIdle()
await service.close()
const restarting = performance.now()
const restarted = await startService(config)
const restartSeconds = seconds(restarting)
service = restarted.service
mqttUrl = restarted.mqttUrl
await service.listen({ port: 0, host: '127.0.0.1' })
const httpUrl = `http://127.0.0.1:${(service.server.address() as AddressInfo).port}`
const restartedAt = service.store.headPosition
const beforeStorm = residentBytes()
countCommits(service)
const stormStart = logCheck(service, restartedAt)
const statusPoller = await startStatusPoller(httpUrl)
log(`restart storm: ${f(SENSORS)} sensors at once...`)
const storming = startFleet({ url: mqttUrl, sensorsFile, concurrency: SENSORS, timeoutSeconds: TIMEOUT_S })
// How long the event loop that serves MQTT and HTTP was held at a time, while the storm lasted.
const loopDelay = monitorEventLoopDelay({ resolution: 5 })
loopDelay.enable()
const storm = await storming
loopDelay.disable()
const status = await statusPoller.stop(storm.result)
await delay(IDLE_MS)
const afterStorm = residentBytes()
const connectedAfterStorm = service.broker.aedes.connectedClients
const stormCheck = logCheck(service, restartedAt)
await endFleet(storm, service)
const busyAfterStorm = await untilIdle()
// Every connection of both phases has its end on record: 2 × SENSORS of each.
const ended = logCheck(service, registered)
await service.close()

// 4. Mosquitto through the same phases, now that devicelog is closed: the two do not share the cores.
const mosquittoBinary = findMosquitto()
let mosquitto: MosquittoRun | undefined
let mosquittoFailure: string | undefined
if (mosquittoBinary !== undefined) {
  try {
    mosquitto = await runMosquitto(mosquittoBinary, sensors)
  } catch (error) {
    // devicelog's results are still reported; the line for Mosquitto and the exit code say it failed.
    mosquittoFailure = error instanceof Error ? error.message : String(error)
    process.exitCode = 1
  }
}
rmSync(dir, { recursive: true, force: true })

// 5. The report.
const r = first.result
const perDevice = (bytes: number, before: number, devices: number) => f((bytes - before) / Math.max(1, devices) / 1024, 1)
const rssPerDevice = perDevice(idle.rss, empty.rss, connectedIdle)
const cpuPerConnect = (fleet: Fleet) => `${f(fleet.serviceCpuMs / Math.max(1, fleet.result.configured), 2)} ms service CPU per configured sensor`
const p = (q: number) => f(percentile(status, q), 1)
console.log(`devicelog fleet bench: ${f(SENSORS)} sensors, each subscribed QoS 1 to its retained configuration, Node ${process.version}`)
console.log(`registration: ${f(SENSORS)} sensors in ${f(registerSeconds, 1)} s (${f(SENSORS / registerSeconds)}/s, ${REGISTER_CONCURRENCY} at a time over inject)`)
console.log(`first connect (${f(CONCURRENCY)} at a time): ${f(r.seconds, 2)} s, ${outcome(r)}; ${cpuPerConnect(first)}`)
console.log(`  ${checkLine(firstCheck)}; ${groupLine(beforeFirst, firstCheck)}`)
console.log(`RSS after first connect: ${f(idle.rss / MB, 1)} MB with ${f(connectedIdle)} idle sensors connected (${f(empty.rss / MB, 1)} MB empty, ` +
  `${f(before.rss / MB, 1)} MB with them registered): ${rssPerDevice} KB per registered and connected device; ` +
  `heap ${perDevice(idle.heap, before.heap, connectedIdle)} KB per connection`)
console.log(`restart: new service ready in ${f(restartSeconds, 2)} s (nothing republished: retained configurations are read from the log)`)
console.log(`restart storm (all at once): ${f(storm.result.seconds, 2)} s, ${outcome(storm.result)}; ${cpuPerConnect(storm)}`)
console.log(`  ${checkLine(stormCheck)}; ${groupLine(stormStart, stormCheck)}`)
const endsRight = ended.connected === 2 * SENSORS && ended.disconnected === 2 * SENSORS
if (!endsRight) process.exitCode = 1
console.log(`  once the fleet left: ${f(ended.connected)} connections and ${f(ended.disconnected)} ends on record over both phases` +
  (endsRight ? ', each with its end' : ` (WRONG: ${f(2 * SENSORS)} of each expected)`))
console.log(`after the storm: the service stayed busy ${f(busyAfterStorm, 1)} s more once the clients had left`)
console.log(`RSS after the storm: ${f(afterStorm.rss / MB, 1)} MB with ${f(connectedAfterStorm)} idle sensors connected (${f(beforeStorm.rss / MB, 1)} MB before it, ` +
  `the same process); heap ${perDevice(afterStorm.heap, beforeStorm.heap, connectedAfterStorm)} KB per connection`)
console.log(`GET /status during the storm: ${status.length} requests (one every ${STATUS_INTERVAL_MS} ms at most), p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${f(status.at(-1) ?? 0, 1)} ms`)
console.log(`  event loop delay meanwhile: p50 ${f(loopDelay.percentile(50) / 1e6, 1)} ms, p99 ${f(loopDelay.percentile(99) / 1e6, 1)} ms, max ${f(loopDelay.max / 1e6, 1)} ms`)
// A phase some sensors never finished still reports; the summary says so rather than the exit code.
const complete = (result: FleetResult) => result.configured === SENSORS ? '' : ` (INCOMPLETE: ${f(result.configured)} configured)`
/** devicelog's time over Mosquitto's: above 1, devicelog is the slower. */
const ratio = (devicelog: FleetResult, mosquitto: FleetResult) => `${f(devicelog.seconds / mosquitto.seconds, 2)}×`
if (mosquitto !== undefined) {
  console.log(`mosquitto ${mosquitto.version} first connect (${f(CONCURRENCY)} at a time, anonymous): ${f(mosquitto.first.seconds, 2)} s, ${outcome(mosquitto.first)}`)
  console.log(`mosquitto restart: ready in ${f(mosquitto.restartSeconds, 2)} s (retained configurations reloaded from its persistence file)`)
  console.log(`mosquitto restart storm (all at once): ${f(mosquitto.storm.seconds, 2)} s, ${outcome(mosquitto.storm)}`)
  console.log(`devicelog / mosquitto: first connect ${ratio(r, mosquitto.first)}, restart storm ${ratio(storm.result, mosquitto.storm)}`)
} else if (mosquittoFailure !== undefined) {
  console.log(`mosquitto: FAILED (${mosquittoFailure}), no comparison`)
} else {
  console.log('mosquitto: not installed (apt-get install mosquitto), no comparison')
}
console.log()
const mosquittoSummary = mosquitto === undefined
  ? ''
  : ` | mosquitto storm ${f(mosquitto.storm.seconds, 1)} s${complete(mosquitto.storm)} (${ratio(storm.result, mosquitto.storm)})`
console.log(`summary: sensors ${f(SENSORS)} | first connect ${f(r.seconds, 1)} s${complete(r)} | RSS ${f(idle.rss / MB)} MB, ${rssPerDevice} KB/device | ` +
  `restart storm ${f(storm.result.seconds, 1)} s${complete(storm.result)} | /status p50 ${p(0.5)} ms p99 ${p(0.99)} ms${mosquittoSummary}`)
