// `npm run cluster` end to end: the real script (src/cli/cluster.ts) as its own process, with the
// real PostgreSQL, Redis, HAProxy and two devicelog nodes it starts. A user, a network and a
// sensor through the balancer's HTTP port, the sensor's MQTT session through its MQTT port, the
// measurement served by both nodes; Ctrl-C (SIGINT) stops everything and exits 0; the cluster
// started again on the same folder still knows the sensor (the log is kept in <dir>/postgres).
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { isDeepStrictEqual } from 'node:util'
import { join, resolve } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import t from 'tap'
import { freePort, serviceEnv } from '../src/cli/engines.ts'

const root = resolve(import.meta.dirname, '..')
const BANNER_TIMEOUT_MS = 45_000
const EXIT_TIMEOUT_MS = 60_000

interface BannerNode { name: string, httpPort: number, mqttPort: number }

/** `npm run cluster` as its own process; its stdout and stderr are kept. */
class Cluster {
  readonly child: ChildProcess
  stdout = ''
  stderr = ''
  /** The exit code (null when killed by a signal) and signal. */
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  private readonly waiters = new Set<() => void>()

  constructor (readonly dir: string, readonly httpPort: number, readonly mqttPort: number) {
    this.child = spawn(process.execPath, [
      '--import', 'tsx', 'src/cli/cluster.ts',
      '--dir', dir, '--nodes', '2', '--port', String(httpPort), '--mqtt-port', String(mqttPort)
    ], { cwd: root, env: serviceEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout!.on('data', (chunk: Buffer) => { this.stdout += chunk.toString(); this.wake() })
    this.child.stderr!.on('data', (chunk: Buffer) => { this.stderr += chunk.toString(); this.wake() })
    this.exited = new Promise(resolve => this.child.once('exit', (code, signal) => { this.wake(); resolve({ code, signal }) }))
  }

  get running (): boolean { return this.child.exitCode === null && this.child.signalCode === null }

  private wake (): void { for (const waiter of this.waiters) waiter() }

  /** Resolves with stdout once `done(stdout)`; rejects if the process exits first, or after `ms`. */
  waitForStdout (done: (stdout: string) => boolean, what: string, ms = BANNER_TIMEOUT_MS): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (done(this.stdout)) finish(() => resolve(this.stdout))
        else if (!this.running) finish(() => reject(new Error(`the cluster exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}:\n${this.stdout}\n${this.stderr}`)))
      }
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${ms / 1000} s:\n${this.stdout}\n${this.stderr}`))), ms)
      const finish = (settle: () => void): void => { clearTimeout(timer); this.waiters.delete(check); settle() }
      this.waiters.add(check)
      check()
    })
  }

  /** The banner, whole (it ends with the Ctrl-C line), and the nodes it lists. */
  async banner (): Promise<{ text: string, nodes: BannerNode[] }> {
    const complete = (stdout: string): boolean => /^devicelog: [^\n]*\n[\s\S]*^Ctrl-C stops[^\n]*\n/m.test(stdout)
    const stdout = await this.waitForStdout(complete, 'the banner')
    const text = stdout.slice(stdout.indexOf('devicelog: '))
    const nodes = [...text.matchAll(/^ {2}(node-\d+) +http:\/\/127\.0\.0\.1:(\d+) +mqtt:\/\/127\.0\.0\.1:(\d+)/gm)]
      .map(([, name, http, mqtt]) => ({ name: name!, httpPort: Number(http), mqttPort: Number(mqtt) }))
    return { text, nodes }
  }

  /** Send `signal`; resolves with how it exited, or rejects if it has not within `ms`. */
  async stop (signal: NodeJS.Signals, ms = EXIT_TIMEOUT_MS): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    this.child.kill(signal)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`the cluster did not exit within ${ms / 1000} s of ${signal}:\n${this.stdout}\n${this.stderr}`)), ms)
    })
    try { return await Promise.race([this.exited, late]) } finally { clearTimeout(timer) }
  }
}

/** The pid of the last process that logged to a node's log file (pino writes `pid` on every line). */
function nodePid (file: string): number | undefined {
  const lines = readFileSync(file, 'utf8').trim().split('\n').reverse()
  for (const line of lines) {
    try {
      const pid = (JSON.parse(line) as { pid?: unknown }).pid
      if (typeof pid === 'number') return pid
    } catch {}
  }
  return undefined
}

interface Reply { status: number, body: any }

async function request (port: number, method: string, path: string, options: { token?: string, body?: unknown } = {}): Promise<Reply> {
  const headers: Record<string, string> = {}
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
  if (options.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body)
  })
  const text = await response.text()
  let body: unknown = text
  try { body = text === '' ? undefined : JSON.parse(text) } catch {}
  return { status: response.status, body }
}

/** Whether anything accepts an HTTP request on the port (a refused connection makes fetch reject). */
const answers = (port: number): Promise<boolean> =>
  fetch(`http://127.0.0.1:${port}/status`, { signal: AbortSignal.timeout(5000) }).then(() => true, () => false)

/** One MQTT connection attempt: resolves with the client once CONNACKed, rejects with the refusal. */
function connectOnce (url: string, username: string, password: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { username, password, reconnectPeriod: 0, connectTimeout: 5000 })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', error => { client.end(true); reject(error) })
  })
}

t.test('npm run cluster: two nodes behind HAProxy, one log; Ctrl-C stops it all; started again, the log is still there', async t => {
  t.setTimeout(110_000)
  const dir = mkdtempSync(join(tmpdir(), 'devicelog-cluster-script-'))
  // As root, PostgreSQL runs as the `postgres` user, which must be able to reach <dir>/postgres:
  // mkdtemp makes the folder 0700 (root only).
  chmodSync(dir, 0o755)
  const clusters: Cluster[] = []
  const clients: MqttClient[] = []
  t.teardown(async () => {
    for (const client of clients) await client.endAsync(true).catch(() => {})
    for (const cluster of clusters) {
      if (!cluster.running) continue
      // Gracefully first: its engines and nodes run in their own process groups, and a SIGKILL
      // would leave them running (PostgreSQL in the folder removed below). SIGKILL if that hangs.
      await cluster.stop('SIGTERM', 20_000).catch(() => {})
      if (cluster.running) cluster.child.kill('SIGKILL')
    }
    rmSync(dir, { recursive: true, force: true })
  })
  const startCluster = async (): Promise<Cluster> => {
    const cluster = new Cluster(dir, await freePort(), await freePort())
    clusters.push(cluster)
    return cluster
  }

  // 1. The banner, once everything is up.
  const first = await startCluster()
  const { text: banner, nodes } = await first.banner()
  t.match(banner, /^devicelog: 2 nodes behind HAProxy\n/, 'the banner says how many nodes')
  t.match(banner, `http://127.0.0.1:${first.httpPort}\n`, 'the banner shows the balancer\'s HTTP address')
  t.match(banner, `mqtt://127.0.0.1:${first.mqttPort}\n`, 'the banner shows the balancer\'s MQTT address')
  t.match(banner, `?host=${encodeURIComponent(join(dir, 'postgres'))}&`, 'PostgreSQL runs in <dir>/postgres')
  t.same(nodes.map(node => node.name), ['node-1', 'node-2'], 'the banner lists both nodes')
  const ports = nodes.flatMap(node => [node.httpPort, node.mqttPort])
  t.equal(new Set([...ports, first.httpPort, first.mqttPort]).size, 6, 'every node and the balancer on ports of their own')

  // 2. A user, a network and a sensor, through the balancer.
  const user = await request(first.httpPort, 'POST', '/users', { body: { username: `cluster-${process.pid}`, password: 'correct horse' } })
  t.equal(user.status, 201, 'POST /users through the balancer')
  const token = user.body?.access_token as string
  t.type(token, 'string', 'an access token')
  // Round robin sends each request to the other node: it serves at once what the first acknowledged.
  const network = await request(first.httpPort, 'POST', '/networks', { token, body: { network_name: 'cluster network' } })
  t.equal(network.status, 201, 'POST /networks through the balancer')
  const networkId = network.body?.network_identifier as string
  t.type(networkId, 'string', 'a network identifier')
  const sensor = await request(first.httpPort, 'POST', '/sensors', {
    token, body: { sensor_name: 'cluster sensor', network_identifier: networkId, configuration: { interval: 5 } }
  })
  t.equal(sensor.status, 201, 'POST /sensors through the balancer')
  const sensorId = sensor.body?.sensor_identifier as string
  t.type(sensorId, 'string', 'a sensor identifier')
  t.equal(sensor.body?.mqtt?.username, sensorId, 'the sensor\'s MQTT user name is its identifier')
  const password = sensor.body?.mqtt?.password as string
  t.type(password, 'string', 'an MQTT password')

  // 3. The sensor's session through the balancer's MQTT port, on whichever node HAProxy picks:
  // that node refuses a device only on what every node had committed.
  const mqttUrl = `mqtt://127.0.0.1:${first.mqttPort}`
  const client: MqttClient = await connectOnce(mqttUrl, sensorId, password)
  clients.push(client)
  t.ok(client.connected, 'the sensor connects through HAProxy with the credentials registered through HAProxy')

  const configurationTopic = `configurations/${sensorId}`
  const configuration = new Promise<{ payload: unknown, retain: boolean }>(resolve => {
    client.on('message', (topic, payload, packet) => {
      if (topic === configurationTopic) resolve({ payload: JSON.parse(payload.toString()), retain: packet.retain })
    })
  })
  const granted = await client.subscribeAsync(configurationTopic, { qos: 1 })
  t.same(granted.map(grant => grant.qos), [1], 'the subscription to its configuration is granted at QoS 1')
  t.same(await configuration, { payload: { revision: 0, configuration: { interval: 5 } }, retain: true },
    'the retained configuration arrives')

  const measurements = { measurements: [{ revision: 0, timestamp: 1_767_225_600, value: { celsius: 21.5 } }] }
  // publishAsync resolves (with the PUBLISH sent) once the PUBACK came; the PUBACK itself is seen here.
  const pubacks: number[] = []
  client.on('packetreceive', packet => { if (packet.cmd === 'puback') pubacks.push(packet.messageId!) })
  const published = await client.publishAsync(`measurements/${sensorId}`, JSON.stringify(measurements), { qos: 1 })
  t.type(published?.messageId, 'number', 'the measurement went out at QoS 1, with a message id')
  t.same(pubacks, [published?.messageId], 'the measurement is acknowledged (PUBACK)')
  await client.endAsync()

  // 4. Each node serves it, once it has folded the commit (the one that did not take it learns
  // it asynchronously, through the log): each node's own port, polled briefly.
  const expected = [{ revision: 0, creation_timestamp: 1_767_225_600, measurement: { celsius: 21.5 } }]
  for (const node of nodes) {
    const deadline = Date.now() + 10_000
    let reply: Reply
    for (;;) {
      reply = await request(node.httpPort, 'GET', `/sensors/${sensorId}/measurements`, { token })
      if ((reply.status === 200 && isDeepStrictEqual(reply.body, expected)) || Date.now() > deadline) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.equal(reply.status, 200, `${node.name} answers GET /sensors/<id>/measurements`)
    t.same(reply.body, expected, `${node.name} serves the measurement`)
  }
  t.notMatch(first.stdout, /exited \(.*\); starting it again/, 'no node exited while the cluster ran')

  // A node that dies is started again, on its ports and its replica. Its pid is in its own log
  // (<dir>/node-2.log, pino's `pid`).
  const victim = nodes[1]!
  const pid = nodePid(join(dir, `${victim.name}.log`))
  t.type(pid, 'number', `${victim.name}'s pid is in its log`)
  process.kill(pid!, 'SIGKILL')
  const restartLine = `${victim.name} exited (killed); starting it again\n`
  await first.waitForStdout(stdout => stdout.includes(restartLine), `"${restartLine.trim()}"`, 10_000)
  t.pass(`the cluster saw ${victim.name} die and starts it again`)
  // Nothing is printed once it listens again: its own port, polled briefly.
  const deadline = Date.now() + 30_000
  while (!await answers(victim.httpPort) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  const restarted = await request(victim.httpPort, 'GET', `/sensors/${sensorId}/measurements`, { token })
  t.equal(restarted.status, 200, `${victim.name}, started again, answers on its port`)
  t.same(restarted.body, expected, `${victim.name}, started again, serves the measurement`)
  t.not(nodePid(join(dir, `${victim.name}.log`)), pid, `${victim.name} runs as a new process`)

  // 5. Ctrl-C: everything stops, and the script exits 0.
  const stopped = await first.stop('SIGINT')
  t.same(stopped, { code: 0, signal: null }, 'SIGINT: the cluster exits with code 0')
  t.equal(await answers(first.httpPort), false, 'nothing listens on the balancer\'s HTTP port any more (HAProxy stopped)')
  for (const node of nodes) t.equal(await answers(node.httpPort), false, `nothing listens on ${node.name}'s HTTP port any more`)
  t.notOk(existsSync(join(dir, 'postgres', 'data', 'postmaster.pid')), 'PostgreSQL shut down cleanly (its postmaster.pid is gone)')
  t.ok(existsSync(join(dir, 'postgres', 'data', 'PG_VERSION')), 'the log stays in <dir>/postgres')

  // 6. Started again on the same folder. The nodes' replicas are removed first, so what they
  // serve can only come from the log kept in <dir>/postgres.
  for (const file of readdirSync(dir)) if (/^node-\d+\.db/.test(file)) rmSync(join(dir, file), { force: true })
  const second = await startCluster()
  const again = await second.banner()
  t.same(again.nodes.map(node => node.name), ['node-1', 'node-2'], 'started again: both nodes')
  const expectedSensor = { sensor_identifier: sensorId, sensor_name: 'cluster sensor', network_identifier: networkId, revision: 0, configuration: { interval: 5 } }
  const known = await request(second.httpPort, 'GET', `/sensors/${sensorId}`, { token })
  t.equal(known.status, 200, 'started again: the sensor is known through the balancer, with the same token')
  t.match(known.body, expectedSensor, 'started again: the sensor as registered')
  for (const node of again.nodes) {
    const direct = await request(node.httpPort, 'GET', `/sensors/${sensorId}`, { token })
    t.equal(direct.status, 200, `started again: ${node.name} knows the sensor`)
    t.match(direct.body, expectedSensor, `started again: ${node.name} serves the sensor as registered`)
  }
  const after = await second.stop('SIGTERM')
  t.same(after, { code: 0, signal: null }, 'SIGTERM: the cluster exits with code 0')
  t.equal(await answers(second.httpPort), false, 'nothing listens on the balancer\'s HTTP port after SIGTERM')
})
