// npm run bench: durable ingest of the running service against bare Aedes, over loopback.
// BENCH_CLIENTS (20), BENCH_INFLIGHT (50), BENCH_MESSAGES per client (2000), BENCH_BATCH (5).
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Aedes } from 'aedes'
import Fastify from 'fastify'
import app, { requestIds } from '../src/app.ts'
import { systemClock } from '../src/clock.ts'
import { parseConfig } from '../src/config.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const setting = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const CLIENTS = setting('BENCH_CLIENTS', 20)
const INFLIGHT = setting('BENCH_INFLIGHT', 50)
const PER_CLIENT = setting('BENCH_MESSAGES', 2000)
const BATCH = setting('BENCH_BATCH', 5)

interface LoadResult { acknowledged: number, seconds: number, p50: number, p99: number }
interface Measured extends LoadResult { cpuMsPerMessage: number, messagesPerSecond: number }

function runLoad (spec: object): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'bench/load.ts', JSON.stringify(spec)], { cwd: root, maxBuffer: 1 << 20 }, (error, stdout) => {
      if (error !== null) reject(error)
      else resolve(JSON.parse(stdout) as LoadResult)
    })
  })
}

/** Runs a load and charges this process's CPU time (where the broker runs) to it. */
async function measure (spec: object): Promise<Measured> {
  const cpu = process.cpuUsage()
  const result = await runLoad(spec)
  const used = process.cpuUsage(cpu)
  return {
    ...result,
    messagesPerSecond: result.acknowledged / result.seconds,
    cpuMsPerMessage: (used.user + used.system) / 1000 / result.acknowledged
  }
}

const dir = mkdtempSync(join(tmpdir(), 'devicelog-bench-'))
const config = parseConfig({ DATABASE_PATH: join(dir, 'devicelog.db'), LOG_LEVEL: 'silent' })
const service = Fastify({ logger: false, ...requestIds })
await service.register(app, { config, clock: systemClock })
await service.ready()
const mqttPort = await service.broker.listen(0, '127.0.0.1')

const inject = async (url: string, token: string | undefined, payload: object) => {
  const response = await service.inject({ method: 'POST', url, payload, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return response.json()
}
const { access_token: token } = await inject('/users', undefined, { username: 'bench', password: 'benchmark' })
const { network_identifier: network } = await inject('/networks', token, { network_name: 'bench' })
const sensors: Array<{ username: string, password: string, topic: string }> = []
for (let i = 0; i < CLIENTS; i++) {
  const sensor = await inject('/sensors', token, { sensor_name: `sensor-${i}`, network_identifier: network, configuration: {} })
  sensors.push({ username: sensor.sensor_identifier, password: sensor.mqtt.password, topic: `measurements/${sensor.sensor_identifier}` })
}

const bare = await Aedes.createBroker()
const bareServer = createServer(bare.handle)
await new Promise<void>(resolve => bareServer.listen(0, '127.0.0.1', resolve))
const bareUrl = `mqtt://127.0.0.1:${(bareServer.address() as AddressInfo).port}`
const bareClients = sensors.map((_, i) => ({ topic: `measurements/bare-${i}` }))

const load = { perClient: PER_CLIENT, inflight: INFLIGHT, batch: BATCH }
const oneInFlight = { perClient: Math.max(1, Math.floor(PER_CLIENT / 10)), inflight: 1, batch: BATCH }
const countEvents = () => service.store.db.prepare("SELECT count(*) FROM events WHERE type = 'MeasurementsRecorded'").pluck().get() as number

process.stderr.write(`warming up...\n`)
await measure({ url: `mqtt://127.0.0.1:${mqttPort}`, clients: sensors, perClient: 200, inflight: INFLIGHT, batch: BATCH })
await measure({ url: bareUrl, clients: bareClients, perClient: 200, inflight: INFLIGHT, batch: BATCH })
const eventsBefore = countEvents()
const positionBefore = service.store.headPosition

process.stderr.write(`devicelog: ${CLIENTS} clients x ${PER_CLIENT} messages, ${INFLIGHT} in flight each...\n`)
const durable = await measure({ url: `mqtt://127.0.0.1:${mqttPort}`, clients: sensors, ...load })
const committed = countEvents() - eventsBefore
const events = service.store.headPosition - positionBefore
process.stderr.write('bare Aedes, same load...\n')
const bareRun = await measure({ url: bareUrl, clients: bareClients, ...load })
process.stderr.write('one message in flight per client...\n')
const durableOne = await measure({ url: `mqtt://127.0.0.1:${mqttPort}`, clients: sensors, ...oneInFlight })
const bareOne = await measure({ url: bareUrl, clients: bareClients, ...oneInFlight })

await service.close()
await new Promise<void>(resolve => bare.close(() => resolve()))
bareServer.close()

const replay = await new Promise<string>((resolve, reject) => {
  execFile(process.execPath, ['bin/devicelog.js', 'replay', '--database', config.DATABASE_PATH, '--out', join(dir, 'replayed.db')], { cwd: root },
    (error, stdout) => { if (error !== null) reject(error); else resolve(stdout) })
})
rmSync(dir, { recursive: true, force: true })

const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const line = (label: string, m: Measured) =>
  `${label.padEnd(34)} ${f(m.messagesPerSecond).padStart(8)} msg/s  ${f(m.cpuMsPerMessage * 1000, 1).padStart(6)} µs CPU/msg  p50 ${f(m.p50, 2)} ms  p99 ${f(m.p99, 2)} ms`
console.log(`devicelog bench: ${CLIENTS} sensors, QoS 1, ${BATCH} measurements a message, SQLite WAL synchronous=FULL, Node ${process.version}`)
console.log(line(`devicelog (${INFLIGHT} in flight/client)`, durable))
console.log(line(`bare Aedes (${INFLIGHT} in flight/client)`, bareRun))
console.log(line('devicelog (1 in flight/client)', durableOne))
console.log(line('bare Aedes (1 in flight/client)', bareOne))
console.log(`durable ingest: ${f(durable.messagesPerSecond)} messages/s = ${f(events / durable.seconds)} events/s = ${f(durable.messagesPerSecond * BATCH)} measurements/s`)
console.log(`acknowledged ${durable.acknowledged}, committed ${committed}: ${committed === durable.acknowledged ? 'every acknowledged message is in the log' : 'MISMATCH'}`)
console.log(`throughput ratio devicelog/bare: ${f(durable.messagesPerSecond / bareRun.messagesPerSecond, 2)} (${INFLIGHT} in flight), ${f(durableOne.messagesPerSecond / bareOne.messagesPerSecond, 2)} (1 in flight); CPU ratio ${f(durable.cpuMsPerMessage / bareRun.cpuMsPerMessage, 2)}`)
console.log(replay.trim())
if (committed !== durable.acknowledged) process.exitCode = 1
