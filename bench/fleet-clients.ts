// The fleet of bench/fleet.ts, run as its own process so that the clients' CPU and memory are
// not the service's: every sensor connects (`concurrency` at a time; a slot frees once its
// sensor is configured), subscribes QoS 1 to configurations/<its id> and counts as configured
// when the retained configuration arrives. Progress goes to stderr; once every sensor is
// configured (or failed, or `timeoutSeconds` passed) one JSON line goes to stdout. The
// connections then stay open, idle, until the bench closes this process's stdin.
import { readFileSync } from 'node:fs'
import { connect as connectTcp, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import mqttPacket from 'mqtt-packet'

export interface FleetSpec {
  url: string
  /** A JSON file of FleetSensor[]: 10,000 of them do not fit in one argument. */
  sensorsFile: string
  concurrency: number
  timeoutSeconds: number
  /** Connect without username and password (Mosquitto with anonymous access, for the comparison). */
  anonymous?: boolean
}
export interface FleetSensor { id: string, password: string }
export interface FleetResult {
  configured: number
  failed: number
  seconds: number
  /** Per sensor, from the start of its connect to its configuration (ms). */
  p50: number
  p99: number
  max: number
  errors: string[]
  /** This process's CPU until it reported: what the fleet itself took of the machine (ms). */
  clientCpuMs: number
  /** When the first sensor began to connect (ms since the epoch). */
  startedAt: number
}

const spec = JSON.parse(process.argv[2]!) as FleetSpec
const sensors = JSON.parse(readFileSync(spec.sensorsFile, 'utf8')) as FleetSensor[]
const { hostname: host, port } = new URL(spec.url)
const KEEPALIVE_S = 60

const sockets: Socket[] = []
const latencies: number[] = []
/** The first few distinct failure messages, to say why a sensor did not get its configuration. */
const errors = new Set<string>()
let connected = 0
let failed = 0

/**
 * Connects one sensor, as its firmware would: CONNECT with its credentials (clean session),
 * SUBSCRIBE QoS 1 to its configuration once the CONNACK says yes, PUBACK for what arrives.
 * A client of MQTT packets over a TCP socket (mqtt-packet, which mqtt.js itself uses) rather
 * than mqtt.js: the fleet shares the machine's two cores with the broker it measures, and
 * 10,000 mqtt.js clients took about 4 s of CPU to connect, as long as Mosquitto's whole storm.
 * Resolves once its configuration arrived, or once it failed.
 */
function configure (sensor: FleetSensor): Promise<void> {
  const started = performance.now()
  const topic = `configurations/${sensor.id}`
  return new Promise(resolve => {
    let settled = false
    const fail = (why: string) => {
      if (settled) return
      settled = true
      failed++
      if (errors.size < 5) errors.add(why)
      resolve()
    }
    const socket = connectTcp(Number(port), host)
    sockets.push(socket)
    socket.setNoDelay(true)
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', packet => {
      switch (packet.cmd) {
        case 'connack':
          if (packet.returnCode !== 0) return fail(`CONNACK ${packet.returnCode}`)
          connected++
          socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }))
          return
        case 'suback':
          if (packet.granted[0] === 128) fail('subscription refused')
          return
        case 'publish':
          if (packet.qos === 1) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId! }))
          if (settled || packet.topic !== topic) return
          settled = true
          latencies.push(performance.now() - started)
          resolve()
      }
    })
    parser.on('error', error => fail(`a malformed packet: ${error.message}`))
    socket.on('data', data => parser.parse(data))
    socket.on('error', error => fail(error.message))
    socket.on('close', () => fail('closed before its configuration arrived'))
    const credentials = spec.anonymous === true ? {} : { username: sensor.id, password: Buffer.from(sensor.password) }
    socket.write(mqttPacket.generate({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `fleet-${sensor.id}`, keepalive: KEEPALIVE_S, ...credentials
    }))
  })
}

/** `concurrency` workers, each taking the next sensor once its previous one is settled. */
async function configureAll (): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < sensors.length) await configure(sensors[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(spec.concurrency, sensors.length) }, worker))
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0

const started = performance.now()
const startedAt = Date.now()
const progress = setInterval(() => {
  const seconds = ((performance.now() - started) / 1000).toFixed(0)
  process.stderr.write(`  ${seconds} s: ${connected} connected, ${latencies.length} configured, ${failed} failed of ${sensors.length}\n`)
}, 2000)
// A storm that never ends still reports what it reached.
const timedOut = new Promise<void>(resolve => setTimeout(resolve, spec.timeoutSeconds * 1000).unref())
await Promise.race([configureAll(), timedOut])
const seconds = (performance.now() - started) / 1000
clearInterval(progress)
latencies.sort((a, b) => a - b)
const result: FleetResult = {
  configured: latencies.length,
  failed,
  seconds,
  p50: percentile(latencies, 0.5),
  p99: percentile(latencies, 0.99),
  max: latencies.at(-1) ?? 0,
  errors: [...errors],
  clientCpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage()),
  startedAt
}
process.stdout.write(JSON.stringify(result) + '\n')

// Idle until the bench is done measuring (a PINGREQ each keep-alive half, should that be long);
// then every client says goodbye.
const pingreq = mqttPacket.generate({ cmd: 'pingreq' })
const pings = setInterval(() => { for (const socket of sockets) if (socket.writable) socket.write(pingreq) }, KEEPALIVE_S * 500)
process.stdin.resume()
await new Promise(resolve => process.stdin.once('end', resolve))
clearInterval(pings)
const disconnect = mqttPacket.generate({ cmd: 'disconnect' })
await Promise.all(sockets.map(socket => new Promise(resolve => {
  if (socket.destroyed) return resolve(undefined)
  socket.once('close', resolve)
  socket.end(disconnect)
})))
process.exit(0)
