// `npm run bench:cluster`: several nodes, proven. 20 sensors publish QoS 1 measurements, each
// keeping some in flight: first to one node on its own SQLite log, then to one node on
// PostgreSQL, then to three nodes behind HAProxy (PostgreSQL and Redis between them), where one
// node is killed (SIGKILL) in the middle. Then, from the log in PostgreSQL: every acknowledged
// message is in it exactly once, every device came back through the balancer and is shown
// online, and the hash chain verifies. A wrong count fails the run (exit 1).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt, { Store, type IPublishPacket, type MqttClient } from 'mqtt'
import { freePort, haproxyConfig, startHaproxy, startNode, startPostgres, startRedis, type Engine, type NodeProcess } from '../src/cli/engines.ts'
import { systemClock } from '../src/clock.ts'
import { PostgresLog } from '../src/store/postgres/log.ts'

const { values } = parseArgs({
  options: {
    sensors: { type: 'string', default: '20' },
    inflight: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '8' },
    nodes: { type: 'string', default: '3' }
  }
})
const SENSORS = Number(values.sensors)
const INFLIGHT = Number(values.inflight)
const SECONDS = Number(values.seconds)
const NODES = Number(values.nodes)
const dir = mkdtempSync(join(tmpdir(), 'devicelog-bench-cluster-'))
const engines: Engine[] = []
const nodes: NodeProcess[] = []
let failed = false
const check = (ok: boolean, what: string) => {
  if (!ok) failed = true
  process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${what}\n`)
}

interface Sensor { id: string, password: string }

async function api (url: string, method: string, path: string, body?: unknown, token?: string): Promise<any> {
  const response = await fetch(url + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`)
  return response.json()
}

/** A user, a network and `SENSORS` sensors in it, through the public API. */
async function registerSensors (url: string): Promise<{ sensors: Sensor[], token: string, network: string }> {
  const user = await api(url, 'POST', '/users', { username: `bench-${Date.now()}`, password: 'correct horse' })
  const token = user.access_token as string
  const network = (await api(url, 'POST', '/networks', { network_name: 'bench' }, token)).network_identifier as string
  const sensors: Sensor[] = []
  for (let i = 0; i < SENSORS; i++) {
    const sensor = await api(url, 'POST', '/sensors', { sensor_name: `sensor-${i}`, network_identifier: network, configuration: {} }, token)
    sensors.push({ id: sensor.sensor_identifier, password: sensor.mqtt.password })
  }
  return { sensors, token, network }
}

/**
 * mqtt.js sends the QoS 1 messages a connection left unacknowledged again on the next one, but
 * without the DUP flag that says so (MQTT 3.1.1, 4.3.2); this store sets it, as firmware should.
 */
class RedeliveringStore extends Store {
  override createStream () {
    for (const packet of (this as unknown as { _inflights: Map<number, IPublishPacket> })._inflights.values()) {
      if (packet.cmd === 'publish') packet.dup = true
    }
    return super.createStream()
  }
}

interface Load {
  /** Acknowledged sequence numbers, by sensor. */
  acknowledged: Map<string, Set<number>>
  count: () => number
  /** Stop sending; resolves once every message in flight is acknowledged. */
  stop: () => Promise<void>
  clients: MqttClient[]
  /** Resolves once every client whose connection closed after `since` is connected again. */
  reconnected: (since: number) => Promise<number>
}

/** Each sensor keeps `INFLIGHT` QoS 1 messages outstanding, reconnecting (300 ms) whenever its connection ends. */
async function startLoad (mqttUrl: string, sensors: Sensor[]): Promise<Load> {
  const acknowledged = new Map<string, Set<number>>()
  let count = 0
  let stopped = false
  let outstanding = 0
  let drained: (() => void) | undefined
  const lastClose = new Map<MqttClient, number>()
  const clients = await Promise.all(sensors.map(sensor => new Promise<MqttClient>((resolve, reject) => {
    const acked = new Set<number>()
    acknowledged.set(sensor.id, acked)
    const client = mqtt.connect(mqttUrl, {
      username: sensor.id, password: sensor.password, clientId: `bench-${sensor.id}`,
      reconnectPeriod: 300, connectTimeout: 5000, outgoingStore: new RedeliveringStore()
    })
    client.on('error', () => {}) // a refused connection while the balancer notices a dead node: it tries again
    client.on('close', () => lastClose.set(client, performance.now()))
    let seq = 0
    const send = () => {
      const n = seq++
      outstanding++
      const payload = JSON.stringify({ measurements: [{ revision: 0, timestamp: Date.now() / 1000, value: { seq: n } }] })
      client.publish(`measurements/${sensor.id}`, payload, { qos: 1 }, error => {
        outstanding--
        if (error === undefined || error === null) { acked.add(n); count++ }
        if (!stopped) send()
        else if (outstanding === 0) drained?.()
      })
    }
    client.once('connect', () => {
      for (let k = 0; k < INFLIGHT; k++) send()
      resolve(client)
    })
    setTimeout(() => reject(new Error(`sensor ${sensor.id} did not connect`)), 30_000).unref()
  })))
  return {
    acknowledged,
    count: () => count,
    clients,
    stop: () => new Promise<void>(resolve => {
      stopped = true
      drained = resolve
      if (outstanding === 0) resolve()
    }),
    reconnected: since => new Promise(resolve => {
      const poll = setInterval(() => {
        const cut = clients.filter(client => (lastClose.get(client) ?? 0) > since)
        if (cut.every(client => client.connected)) { clearInterval(poll); resolve(cut.length) }
      }, 50)
    })
  }
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** One node on its own, `SECONDS` of load straight to it: acknowledged messages a second. */
async function singleNode (env: Record<string, string>): Promise<number> {
  const node = await startNode({ DATABASE_PATH: join(mkdtempSync(join(dir, 'single-')), 'devicelog.db'), ...env })
  nodes.push(node)
  try {
    const { sensors } = await registerSensors(node.url)
    const load = await startLoad(node.mqttUrl, sensors)
    const at = performance.now()
    const before = load.count()
    await sleep(SECONDS * 1000)
    const rate = (load.count() - before) / ((performance.now() - at) / 1000)
    await load.stop()
    await Promise.all(load.clients.map(client => client.endAsync()))
    return rate
  } finally {
    node.child.kill('SIGTERM')
    await node.exited
  }
}

async function main () {
  process.stdout.write(`${SENSORS} sensors, ${INFLIGHT} QoS 1 messages in flight each, ${SECONDS} s a phase\n\n`)
  const alone = await singleNode({})
  process.stdout.write(`one node, SQLite log              ${alone.toFixed(0).padStart(7)} msg/s\n`)
  const postgres = await startPostgres()
  engines.push(postgres)
  const onPostgres = await singleNode({ DATABASE_URL: postgres.url })
  process.stdout.write(`one node, log in PostgreSQL       ${onPostgres.toFixed(0).padStart(7)} msg/s\n`)

  // The cluster, on a fresh database.
  await postgres.stop()
  engines.length = 0
  const shared = await startPostgres()
  const redis = await startRedis()
  engines.push(shared, redis)
  const env = { DATABASE_URL: shared.url, REDIS_URL: redis.url, TIMER_LEASE_SECONDS: '5', TRUST_PROXY: '127.0.0.1' }
  for (let i = 1; i <= NODES; i++) nodes.push(await startNode({ ...env, DATABASE_PATH: join(dir, `node-${i}.db`) }))
  const httpPort = await freePort()
  const mqttPort = await freePort()
  const balanced = nodes.slice(-NODES).map((node, i) => ({
    name: `node-${i + 1}`, httpPort: Number(new URL(node.url).port), mqttPort: Number(new URL(node.mqttUrl).port)
  }))
  engines.push(await startHaproxy(dir, haproxyConfig({ host: '127.0.0.1', httpPort, mqttPort, nodes: balanced }), [httpPort, mqttPort]))
  const balancer = `http://127.0.0.1:${httpPort}`
  const { sensors, token, network } = await registerSensors(balancer)
  // Every node's replica knows the sensors before they connect through the balancer to any of them.
  for (const node of nodes.slice(-NODES)) {
    while ((await api(node.url, 'GET', `/networks/${network}/sensors`, undefined, token)).length < SENSORS) await sleep(50)
  }

  const load = await startLoad(`mqtt://127.0.0.1:${mqttPort}`, sensors)
  const at = performance.now()
  await sleep(SECONDS * 500)
  const beforeKill = load.count() / ((performance.now() - at) / 1000)
  const victim = nodes.at(-2)!
  const killedAt = performance.now()
  victim.child.kill('SIGKILL')
  await victim.exited
  const cut = await load.reconnected(killedAt)
  const back = performance.now() - killedAt
  await sleep(Math.max(0, SECONDS * 1000 - (performance.now() - at)))
  const overall = load.count() / ((performance.now() - at) / 1000)
  await load.stop()
  process.stdout.write(`${NODES} nodes behind HAProxy        ${beforeKill.toFixed(0).padStart(7)} msg/s before the kill, ${overall.toFixed(0)} msg/s over the whole phase\n`)
  process.stdout.write(`  node-2 killed (SIGKILL): its ${cut} sensors all connected again through the balancer after ${(back / 1000).toFixed(2)} s\n\n`)

  // The proof, from the log in PostgreSQL.
  const log = await PostgresLog.open({ url: shared.url, clock: systemClock })
  // The dead node's connections are ended by a survivor once its lease (5 s) has run out.
  const online = async () => {
    const connections = new Map<string, number>()
    for (let after = 0; ;) {
      const batch = await log.read({ after, limit: 5000 })
      if (batch.length === 0) break
      after = batch.at(-1)!.position
      for (const event of batch) {
        if (event.type === 'DeviceConnected') connections.set(event.stream_id, (connections.get(event.stream_id) ?? 0) + 1)
        if (event.type === 'DeviceDisconnected') connections.set(event.stream_id, (connections.get(event.stream_id) ?? 0) - 1)
      }
    }
    return sensors.filter(sensor => connections.get(`sensor-${sensor.id}`) === 1).length
  }
  const deadline = Date.now() + 30_000
  while (await online() < SENSORS && Date.now() < deadline) await sleep(250)
  const recorded = new Map<string, number>()
  for (let after = 0; ;) {
    const batch = await log.read({ after, limit: 5000, type: 'MeasurementsRecorded' })
    if (batch.length === 0) break
    after = batch.at(-1)!.position
    for (const event of batch) {
      for (const measurement of (event.data as unknown as { measurements: Array<{ value: { seq: number } }> }).measurements) {
        const key = `${event.stream_id}:${measurement.value.seq}`
        recorded.set(key, (recorded.get(key) ?? 0) + 1)
      }
    }
  }
  let acknowledged = 0
  let missing = 0
  let twice = 0
  for (const [sensor, acked] of load.acknowledged) {
    for (const seq of acked) {
      acknowledged++
      const times = recorded.get(`sensor-${sensor}:${seq}`) ?? 0
      if (times === 0) missing++
      if (times > 1) twice++
    }
  }
  const extra = [...recorded.values()].filter(times => times > 1).length
  check(missing === 0, `every acknowledged message is in the log: ${acknowledged} acknowledged, ${missing} missing`)
  check(twice === 0 && extra === 0, `each exactly once: ${twice} acknowledged ones recorded twice, ${extra} recorded more than once in all`)
  check(load.clients.every(client => client.connected), `every sensor is connected through the balancer: ${load.clients.filter(c => c.connected).length} of ${SENSORS}`)
  check(await online() === SENSORS, `the log shows every sensor online once (the dead node's connections ended by a survivor): ${await online()} of ${SENSORS}`)
  const verified = await log.verify()
  check(verified.ok, `the hash chain verifies: ${JSON.stringify(verified)}`)
  await log.close()
  await Promise.all(load.clients.map(client => client.endAsync()))
}

try {
  await main()
} catch (error) {
  failed = true
  process.stderr.write(`bench:cluster: ${(error as Error).stack}\n`)
} finally {
  for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGTERM')
  await Promise.all(nodes.map(node => node.exited))
  for (const engine of engines.reverse()) await engine.stop().catch(() => {})
  rmSync(dir, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
