// The load generator, run as its own process so that it does not share the service's CPU
// accounting: N clients, each keeping `inflight` QoS 1 publishes outstanding, `perClient` in all,
// or, under the latency probe, until the bench closes this process's stdin.
// Prints one JSON line: acknowledged count, wall time, latencies (ms).
import mqtt from 'mqtt'
import { measurementsMessage, nowSeconds } from './payload.ts'

export interface LoadSpec {
  url: string
  clients: Array<{ username?: string, password?: string, topic: string }>
  perClient?: number
  untilStdinEnds?: boolean
  inflight: number
  batch: number
}

const spec = JSON.parse(process.argv[2]!) as LoadSpec
const latencies: number[] = []
let acknowledged = 0
let stopped = false
if (spec.untilStdinEnds === true) process.stdin.on('end', () => { stopped = true }).resume()
const more = (sent: number) => spec.untilStdinEnds === true ? !stopped : sent < spec.perClient!

async function runClient (client: LoadSpec['clients'][number]): Promise<void> {
  const connection = mqtt.connect(spec.url, { username: client.username, password: client.password, reconnectPeriod: 0 })
  await new Promise<void>((resolve, reject) => { connection.once('connect', () => resolve()); connection.once('error', reject) })
  await new Promise<void>(resolve => {
    let sent = 0
    let done = 0
    const sendOne = () => {
      const i = sent++
      const started = process.hrtime.bigint()
      connection.publish(client.topic, measurementsMessage(i, nowSeconds(), spec.batch), { qos: 1 }, error => {
        if (error) throw error
        latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
        acknowledged++
        done++
        if (more(sent)) sendOne()
        else if (done === sent) resolve()
      })
    }
    for (let k = 0; k < spec.inflight && more(sent); k++) sendOne()
    if (sent === 0) resolve()
  })
  await connection.endAsync()
}

const started = process.hrtime.bigint()
const cpuAtStart = process.cpuUsage()
await Promise.all(spec.clients.map(runClient))
const seconds = Number(process.hrtime.bigint() - started) / 1e9
latencies.sort((a, b) => a - b)
const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0
const cpu = process.cpuUsage(cpuAtStart)
process.stdout.write(JSON.stringify({ acknowledged, seconds, loadCpuUsPerMessage: (cpu.user + cpu.system) / Math.max(acknowledged, 1), p50: percentile(0.5), p99: percentile(0.99) }) + '\n')
