// The fleet of bench/fleet.ts, run as its own process so that the clients' CPU and memory are
// not the service's: every sensor connects (`concurrency` at a time; a slot frees once its
// sensor is configured), subscribes QoS 1 to configurations/<its id> and counts as configured
// when the retained configuration arrives. Progress goes to stderr; once every sensor is
// configured (or failed, or `timeoutSeconds` passed) one JSON line goes to stdout. The
// connections then stay open, idle, until the bench closes this process's stdin.
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import mqtt, { type MqttClient } from 'mqtt'

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
}

const spec = JSON.parse(process.argv[2]!) as FleetSpec
const sensors = JSON.parse(readFileSync(spec.sensorsFile, 'utf8')) as FleetSensor[]
// Thousands of clients share timers and sockets' emitters: the default limit's warnings are noise.
EventEmitter.defaultMaxListeners = 0

const clients: MqttClient[] = []
const latencies: number[] = []
/** The first few distinct failure messages, to say why a sensor did not get its configuration. */
const errors = new Set<string>()
let connected = 0
let failed = 0

/** Connects one sensor; resolves once its configuration arrived, or once it failed. */
function configure (sensor: FleetSensor): Promise<void> {
  const started = performance.now()
  const topic = `configurations/${sensor.id}`
  const credentials = spec.anonymous === true ? {} : { username: sensor.id, password: sensor.password }
  const client = mqtt.connect(spec.url, { ...credentials, clean: true, reconnectPeriod: 0, keepalive: 60 })
  clients.push(client)
  return new Promise(resolve => {
    let settled = false
    const fail = (why: string) => {
      if (settled) return
      settled = true
      failed++
      if (errors.size < 5) errors.add(why)
      resolve()
    }
    client.once('connect', () => {
      connected++
      client.subscribe(topic, { qos: 1 }, (error, granted) => {
        if (error) fail(`subscribe: ${error.message}`)
        else if (granted?.[0]?.qos === 128) fail('subscription refused')
      })
    })
    client.on('message', received => {
      if (settled || received !== topic) return
      settled = true
      latencies.push(performance.now() - started)
      resolve()
    })
    client.on('error', error => fail(error.message))
    client.on('close', () => fail('closed before its configuration arrived'))
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
  errors: [...errors]
}
process.stdout.write(JSON.stringify(result) + '\n')

// Idle until the bench is done measuring; then every client says goodbye.
process.stdin.resume()
await new Promise(resolve => process.stdin.once('end', resolve))
await Promise.all(clients.map(client => client.endAsync()))
process.exit(0)
