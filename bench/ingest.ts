// npm run bench: every figure of "The log at the broker's speed", in one run.
// 1. Durable ingest of the running service against bare Aedes, over loopback, at 50 and at 1
//    QoS 1 message in flight per client (bench/load.ts, its own process).
// 2. Publish → server-sent event and → WebSocket latency of a probe sensor (bench/probe.ts, its
//    own process), alone and beside sensors publishing as fast as they are acknowledged.
// Phases 1 and 2 run BENCH_REPEATS times, the service and bare Aedes in turn; the table holds the
// median of the runs (of each run's ratio, for a ratio): two runs minutes apart on this machine
// differed by 20% for bare Aedes alone, more than most changes it is meant to judge.
// 3. The log filled in-process to BENCH_FILL_EVENTS; then disk bytes per message, and the speed
//    of `devicelog replay` and `devicelog verify` over it.
// BENCH_CLIENTS (20), BENCH_INFLIGHT (50), BENCH_MESSAGES per client (2000), BENCH_MESSAGES_ONE
// per client at 1 in flight (1000), BENCH_BATCH (1),
// BENCH_LOAD_SENSORS (10), BENCH_PROBE_MESSAGES (250), BENCH_PROBE_INTERVAL_MS (40),
// BENCH_FILL_EVENTS (300000), BENCH_REPEATS (3).
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Aedes } from 'aedes'
import Fastify from 'fastify'
import type { Metadata } from '../events/index.ts'
import { sha256 } from '../src/accounts/secrets.ts'
import app, { requestIds } from '../src/app.ts'
import { systemClock } from '../src/clock.ts'
import { parseConfig } from '../src/config.ts'
import type { LoadSpec } from './load.ts'
import { meanMessageBytes, measurements, nowSeconds } from './payload.ts'
import type { ProbeSpec } from './probe.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const setting = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const CLIENTS = setting('BENCH_CLIENTS', 20)
const INFLIGHT = setting('BENCH_INFLIGHT', 50)
const PER_CLIENT = setting('BENCH_MESSAGES', 2000)
/**
 * At one in flight a run of 200 messages a client lasted about a second, most of it the new load
 * generator's warm-up: bare Aedes measured 6,500-8,000 msg/s that way against 16,500-17,000 in a
 * run of 1,000, which is what a broker sustains.
 */
const PER_CLIENT_ONE = setting('BENCH_MESSAGES_ONE', 1000)
const BATCH = setting('BENCH_BATCH', 1)
const LOAD_SENSORS = Math.min(CLIENTS, setting('BENCH_LOAD_SENSORS', 10))
const PROBE_MESSAGES = setting('BENCH_PROBE_MESSAGES', 250)
const PROBE_INTERVAL_MS = setting('BENCH_PROBE_INTERVAL_MS', 40)
const FILL_EVENTS = setting('BENCH_FILL_EVENTS', 300_000)
const REPEATS = Math.max(1, setting('BENCH_REPEATS', 3))
/** Appends issued before awaiting them: enough for the store to make large groups of them. */
const FILL_CHUNK = 5000

const TARGET = {
  throughputRatio: 0.8,
  cpuRatio: 2,
  p99OverBare: 1.5,
  bytesPerMessage: 400,
  replay: 200_000,
  verify: 200_000,
  sseP99: 10,
  sseP99UnderLoad: 25,
  rateUnderLoad: 9_400
}

interface LoadResult { acknowledged: number, seconds: number, p50: number, p99: number }
interface Measured extends LoadResult {
  cpuMsPerMessage: number
  messagesPerSecond: number
  /** CPU µs per message of the thread that runs the broker and HTTP, and of all the others (the log's writer, V8's GC helpers, libuv's pool); Linux only. */
  threads?: { main: number, others: number }
  /** The service only: the groups it committed, their mean units of work, and the writer's time per group (ms). */
  groups?: { count: number, meanUnits: number, p50: number, p99: number }
}
interface Latency { received: number, p50: number, p99: number, max: number }
interface ProbeResult { published: number, acknowledged: number, sse: Latency, ws: Latency, ack: Latency }
interface Sensor { id: string, password: string }

/** The middle value (the mean of the two middle ones for an even count). */
function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/**
 * Runs a bench script in a process of its own; it prints its result as one JSON line. Its stdin
 * is closed once `stopWhen` settles (a load that runs until then).
 */
function runChild<T> (script: string, spec: object, stopWhen?: Promise<unknown>): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, ['--import', 'tsx', script, JSON.stringify(spec)], { cwd: root, maxBuffer: 1 << 20 }, (error, stdout) => {
      if (error !== null) reject(error)
      else resolve(JSON.parse(stdout) as T)
    })
    const stop = () => { child.stdin?.end() }
    stopWhen?.then(stop, stop)
  })
}

/** CPU time (µs) of each of this process's threads, from /proc (Linux); undefined elsewhere. */
function threadCpu (): Map<string, number> | undefined {
  try {
    const ticks = 1e6 / 100 // USER_HZ
    return new Map(readdirSync('/proc/self/task').map(tid => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return [tid, (Number(fields[11]) + Number(fields[12])) * ticks]
    }))
  } catch {
    return undefined
  }
}

/** Runs a load and charges this process's CPU time (where the broker runs) to it. */
async function measure (spec: LoadSpec): Promise<Measured> {
  const cpu = process.cpuUsage()
  const threadsBefore = threadCpu()
  const result = await runChild<LoadResult>('bench/load.ts', spec)
  const used = process.cpuUsage(cpu)
  const threadsAfter = threadCpu()
  let threads: Measured['threads']
  if (threadsBefore !== undefined && threadsAfter !== undefined) {
    const spent = (tid: string) => (threadsAfter.get(tid) ?? 0) - (threadsBefore.get(tid) ?? 0)
    const main = spent(String(process.pid))
    const all = [...threadsAfter.keys()].reduce((sum, tid) => sum + spent(tid), 0)
    threads = { main: main / result.acknowledged, others: (all - main) / result.acknowledged }
  }
  return {
    ...result,
    messagesPerSecond: result.acknowledged / result.seconds,
    cpuMsPerMessage: (used.user + used.system) / 1000 / result.acknowledged,
    threads
  }
}

// The service, listening on HTTP and MQTT as it does in production, on a fresh database.
const dir = mkdtempSync(join(tmpdir(), 'devicelog-bench-'))
const config = parseConfig({ DATABASE_PATH: join(dir, 'devicelog.db'), LOG_LEVEL: 'silent' })
const service = Fastify({ logger: false, ...requestIds })
await service.register(app, { config, clock: systemClock })
await service.listen({ port: 0, host: '127.0.0.1' })
const httpUrl = `http://127.0.0.1:${(service.server.address() as AddressInfo).port}`
const mqttUrl = `mqtt://127.0.0.1:${await service.broker.listen(0, '127.0.0.1')}`

const inject = async (url: string, token: string | undefined, payload: object) => {
  const response = await service.inject({ method: 'POST', url, payload, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  return response.json()
}
const { access_token: token } = await inject('/users', undefined, { username: 'bench', password: 'benchmark' })
const { network_identifier: network } = await inject('/networks', token, { network_name: 'bench' })
async function registerSensor (name: string): Promise<Sensor> {
  const sensor = await inject('/sensors', token, { sensor_name: name, network_identifier: network, configuration: {} })
  return { id: sensor.sensor_identifier, password: sensor.mqtt.password }
}
const sensors: Sensor[] = []
for (let i = 0; i < CLIENTS; i++) sensors.push(await registerSensor(`sensor-${i}`))
const probeSensor = await registerSensor('probe')
const asClient = (s: Sensor) => ({ username: s.id, password: s.password, topic: `measurements/${s.id}` })

const bare = await Aedes.createBroker()
const bareServer = createServer(bare.handle)
await new Promise<void>(resolve => bareServer.listen(0, '127.0.0.1', resolve))
const bareUrl = `mqtt://127.0.0.1:${(bareServer.address() as AddressInfo).port}`
const bareClients = sensors.map((_, i) => ({ topic: `measurements/bare-${i}` }))

/** Measurement messages the service acknowledged or appended, all phases: what the disk holds. */
let ingested = 0
const positionStart = service.store.headPosition

/** The groups committed during the load being measured: units of work, and the writer's time (BEGIN to the end of COMMIT). */
let commits: Array<{ units: number, seconds: number }> = []
service.store.subscribe((_events, group) => { commits.push({ units: group.units, seconds: group.seconds }) })

async function measureService (spec: Omit<LoadSpec, 'url' | 'clients' | 'batch'>): Promise<Measured> {
  commits = []
  const measured = await measure({ url: mqttUrl, clients: sensors.map(asClient), batch: BATCH, ...spec })
  ingested += measured.acknowledged
  const times = commits.map(c => c.seconds * 1000).sort((a, b) => a - b)
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0
  const units = commits.reduce((sum, c) => sum + c.units, 0)
  return { ...measured, groups: { count: commits.length, meanUnits: units / Math.max(1, commits.length), p50: at(0.5), p99: at(0.99) } }
}
const measureBare = (spec: Omit<LoadSpec, 'url' | 'clients' | 'batch'>) =>
  measure({ url: bareUrl, clients: bareClients, batch: BATCH, ...spec })

/** One run of phase 1: the same loads against the service and against bare Aedes, in turn. */
async function ingestRun (run: number) {
  const load = { perClient: PER_CLIENT, inflight: INFLIGHT }
  const oneInFlight = { perClient: PER_CLIENT_ONE, inflight: 1 }
  const positionBefore = service.store.headPosition
  process.stderr.write(`run ${run}: devicelog, ${CLIENTS} clients x ${PER_CLIENT} messages, ${INFLIGHT} in flight each; bare Aedes; then 1 in flight...\n`)
  const durable = await measureService(load)
  const events = service.store.headPosition - positionBefore
  const bareRun = await measureBare(load)
  const durableOne = await measureService(oneInFlight)
  const bareOne = await measureBare(oneInFlight)
  return { durable, events, bareRun, durableOne, bareOne }
}

async function ingestPhases () {
  process.stderr.write('warming up...\n')
  await measureService({ perClient: 200, inflight: INFLIGHT })
  await measureBare({ perClient: 200, inflight: INFLIGHT })
  const runs = []
  for (let run = 1; run <= REPEATS; run++) runs.push(await ingestRun(run))
  return runs
}

const runProbe = () => runChild<ProbeResult>('bench/probe.ts', {
  mqttUrl, httpUrl, token, network, sensor: probeSensor, count: PROBE_MESSAGES, intervalMs: PROBE_INTERVAL_MS
} satisfies ProbeSpec)

/** One run of phase 2: the probe alone, then beside LOAD_SENSORS sensors publishing as fast as they are acknowledged. */
async function latencyRun (run: number) {
  process.stderr.write(`run ${run}: latency, probe alone, ${PROBE_MESSAGES} messages ${PROBE_INTERVAL_MS} ms apart...\n`)
  const alone = await runProbe()
  process.stderr.write(`run ${run}: latency, probe beside ${LOAD_SENSORS} sensors, ${INFLIGHT} in flight each...\n`)
  // The load starts a second before the probe and stops after it, so that every probe message meets it at full pace.
  const probing = delay(1000).then(runProbe)
  const loading = runChild<LoadResult>('bench/load.ts', {
    url: mqttUrl, clients: sensors.slice(0, LOAD_SENSORS).map(asClient), untilStdinEnds: true, inflight: INFLIGHT, batch: BATCH
  } satisfies LoadSpec, probing)
  const [underLoad, load] = await Promise.all([probing, loading])
  ingested += alone.acknowledged + underLoad.acknowledged + load.acknowledged
  return { alone, underLoad, load: { ...load, messagesPerSecond: load.acknowledged / load.seconds } }
}

async function latencyPhases () {
  const runs = []
  for (let run = 1; run <= REPEATS; run++) runs.push(await latencyRun(run))
  return runs
}

/** Measurement events committed after `position`, read a page at a time. */
function measurementsAfter (position: number): number {
  let count = 0
  for (let after = position; ;) {
    const page = service.store.read({ after, type: 'MeasurementsRecorded', limit: 10_000 })
    if (page.length === 0) return count
    count += page.length
    after = page.at(-1)!.position
  }
}

/** The metadata the broker recorded with the latest published measurement. */
function publishedMetadata (): Metadata {
  const recent = service.store.read({ after: Math.max(0, service.store.headPosition - 1000), type: 'MeasurementsRecorded' })
  return recent.at(-1)!.metadata
}

/** What the broker would record for `payload`: a filled event weighs on disk what a published one does. */
function metadataLike (template: Metadata, payload: string, i: number): Metadata {
  return {
    ...template,
    ...(template.correlation_id === undefined ? {} : { correlation_id: randomUUID() }),
    ...(template.mqtt === undefined ? {} : { mqtt: { ...template.mqtt, message_id: 1 + i % 65535, payload_sha256: sha256(payload) } })
  }
}

/** Phase 3: appends in-process until the log holds `target` events; the store groups them into transactions. */
async function fillLog (target: number) {
  const template = publishedMetadata()
  const total = Math.max(0, target - service.store.headPosition)
  // Readings of the last minutes, a millisecond apart.
  const firstSecond = nowSeconds() - total * BATCH / 1000
  const append = (i: number) => {
    const sensor = sensors[i % sensors.length]!
    const items = measurements(i, firstSecond + i * BATCH / 1000, BATCH)
    return service.store.append(`sensor-${sensor.id}`, [{ type: 'MeasurementsRecorded', data: { sensor_identifier: sensor.id, measurements: items } }],
      { metadata: metadataLike(template, JSON.stringify({ measurements: items }), i), expectedVersion: 'any' })
  }
  process.stderr.write(`filling the log with ${total} events...\n`)
  const started = performance.now()
  for (let done = 0; done < total;) {
    const chunk: Array<Promise<unknown>> = []
    for (const end = Math.min(total, done + FILL_CHUNK); done < end; done++) chunk.push(append(done))
    await Promise.all(chunk)
  }
  ingested += total
  return { appended: total, seconds: (performance.now() - started) / 1000 }
}

/** The database's files as they are on disk: the WAL and its index too, if close left them. */
function databaseBytes (path: string): number {
  return ['', '-wal', '-shm'].map(suffix => path + suffix).filter(existsSync).reduce((sum, file) => sum + statSync(file).size, 0)
}

/** `devicelog <args>` in a child process, also timed from outside for a command that prints no rate. */
function runCli (args: string[]): Promise<{ output: string, seconds: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['bin/devicelog.js', ...args], { cwd: root, maxBuffer: 1 << 20 }, (error, stdout) => {
      if (error !== null) reject(error)
      else resolve({ output: stdout, seconds: (performance.now() - started) / 1000 })
    })
  })
}

/** The rate the command printed ("123,456 events/s" or "(123456 events/s)"), else events over its wall time. */
function rateOf ({ output, seconds }: { output: string, seconds: number }, events: number): { rate: number, printed: boolean } {
  const last = [...output.matchAll(/([\d,]+) events\/s/g)].at(-1)
  return last === undefined ? { rate: events / seconds, printed: false } : { rate: Number(last[1]!.replaceAll(',', '')), printed: true }
}

const phase1 = await ingestPhases()
const phase2 = await latencyPhases()
const committed = measurementsAfter(positionStart)
const fill = await fillLog(FILL_EVENTS)
const events = service.store.headPosition

await service.close()
await new Promise<void>(resolve => bare.close(() => resolve()))
bareServer.close()
const diskBytes = databaseBytes(config.DATABASE_PATH)
process.stderr.write(`replaying and verifying ${events} events...\n`)
const replay = rateOf(await runCli(['replay', '--database', config.DATABASE_PATH, '--out', join(dir, 'replayed.db')]), events)
const verify = rateOf(await runCli(['verify', '--database', config.DATABASE_PATH]), events)
rmSync(dir, { recursive: true, force: true })

// The report.
const acknowledged = ingested - fill.appended
const f = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const line = (label: string, m: Measured) =>
  `${label.padEnd(34)} ${f(m.messagesPerSecond).padStart(8)} msg/s  ${f(m.cpuMsPerMessage * 1000, 1).padStart(6)} µs CPU/msg  p50 ${f(m.p50, 2)} ms  p99 ${f(m.p99, 2)} ms` +
  (m.threads === undefined ? '' : `\n${''.padEnd(36)}CPU µs/msg: broker's thread ${f(m.threads.main, 1)}, other threads ${f(m.threads.others, 1)}`) +
  (m.groups === undefined ? '' : `; ${f(m.groups.count)} groups of ${f(m.groups.meanUnits, 1)} units, writer p50 ${f(m.groups.p50, 2)} ms p99 ${f(m.groups.p99, 2)} ms`)
const latencyLine = (label: string, probe: ProbeResult) => `${label}: ` +
  (['sse', 'ws', 'ack'] as const).map(path => `${{ sse: 'SSE', ws: 'WebSocket', ack: 'ack' }[path]} p50 ${f(probe[path].p50, 2)} ms p99 ${f(probe[path].p99, 2)} ms`).join(', ') +
  ` (${probe.sse.received}/${probe.ws.received}/${probe.acknowledged} of ${probe.published} arrived)`
const bytesPerMessage = diskBytes / ingested
const rateLine = (name: string, r: { rate: number, printed: boolean }) =>
  `${name}: ${f(r.rate)} events/s over ${f(events)} events${r.printed ? '' : ' (timed from outside: includes starting the CLI)'}`

console.log(`devicelog bench: ${CLIENTS} sensors, QoS 1, ${BATCH} measurement${BATCH === 1 ? '' : 's'} a message (${f(meanMessageBytes(BATCH))}-byte payload), SQLite WAL synchronous=FULL, Node ${process.version}`)
phase1.forEach(({ durable, events: appended, bareRun, durableOne, bareOne }, i) => {
  console.log(`run ${i + 1} of ${REPEATS}:`)
  console.log(line(`devicelog (${INFLIGHT} in flight/client)`, durable))
  console.log(line(`bare Aedes (${INFLIGHT} in flight/client)`, bareRun))
  console.log(line('devicelog (1 in flight/client)', durableOne))
  console.log(line('bare Aedes (1 in flight/client)', bareOne))
  console.log(`durable ingest: ${f(durable.messagesPerSecond)} messages/s = ${f(appended / durable.seconds)} events/s = ${f(durable.messagesPerSecond * BATCH)} measurements/s`)
  console.log(`throughput ratio devicelog/bare: ${f(durable.messagesPerSecond / bareRun.messagesPerSecond, 2)} (${INFLIGHT} in flight), ${f(durableOne.messagesPerSecond / bareOne.messagesPerSecond, 2)} (1 in flight); CPU ratio ${f(durable.cpuMsPerMessage / bareRun.cpuMsPerMessage, 2)}`)
})
phase2.forEach(({ alone, underLoad, load }, i) => {
  console.log(latencyLine(`run ${i + 1}, latency, probe alone`, alone))
  console.log(latencyLine(`run ${i + 1}, latency, beside ${LOAD_SENSORS} sensors at ${f(load.messagesPerSecond)} msg/s`, underLoad))
})
console.log(`acknowledged ${acknowledged}, committed ${committed}: ${committed === acknowledged ? 'every acknowledged message is in the log' : 'MISMATCH'}`)
console.log(`fill: ${f(fill.appended)} events appended in-process in ${f(fill.seconds, 1)} s (${f(fill.appended / Math.max(fill.seconds, 1e-9))} events/s)`)
console.log(`disk: ${f(bytesPerMessage)} bytes per message (db ${f(diskBytes / 2 ** 20, 1)} MiB for ${f(ingested)} messages)`)
console.log(rateLine('replay', replay))
console.log(rateLine('verify', verify))

const ratio = (value: number) => f(value, 2)
/** The median over the runs of one figure of phase 1 (or of phase 2). */
const ingestMedian = (pick: (run: typeof phase1[number]) => number) => median(phase1.map(pick))
const latencyMedian = (pick: (run: typeof phase2[number]) => number) => median(phase2.map(pick))
const throughputRatio = ingestMedian(r => r.durable.messagesPerSecond / r.bareRun.messagesPerSecond)
const cpuRatio = ingestMedian(r => r.durable.cpuMsPerMessage / r.bareRun.cpuMsPerMessage)
const oneRatio = ingestMedian(r => r.durableOne.messagesPerSecond / r.bareOne.messagesPerSecond)
const p99Ratio = ingestMedian(r => r.durableOne.p99 / r.bareOne.p99)
const sseAlone = latencyMedian(r => r.alone.sse.p99)
const sseUnderLoad = latencyMedian(r => r.underLoad.sse.p99)
const rateUnderLoad = latencyMedian(r => r.load.messagesPerSecond)
const everyProbeArrived = phase2.every(r => r.alone.sse.received === r.alone.published && r.underLoad.sse.received === r.underLoad.published)
const rows: Array<[figure: string, devicelog: string, bare: string, target: string, met: boolean, value: string]> = [
  [`throughput, ${INFLIGHT} in flight`, `${f(ingestMedian(r => r.durable.messagesPerSecond))} msg/s`, `${f(ingestMedian(r => r.bareRun.messagesPerSecond))} msg/s`, `ratio ≥ ${TARGET.throughputRatio}`,
    throughputRatio >= TARGET.throughputRatio, ratio(throughputRatio)],
  [`CPU per message, ${INFLIGHT} in flight`, `${f(ingestMedian(r => r.durable.cpuMsPerMessage) * 1000, 1)} µs`, `${f(ingestMedian(r => r.bareRun.cpuMsPerMessage) * 1000, 1)} µs`, `ratio ≤ ${TARGET.cpuRatio}`,
    cpuRatio <= TARGET.cpuRatio, ratio(cpuRatio)],
  ['throughput, 1 in flight', `${f(ingestMedian(r => r.durableOne.messagesPerSecond))} msg/s`, `${f(ingestMedian(r => r.bareOne.messagesPerSecond))} msg/s`, `ratio ≥ ${TARGET.throughputRatio}`,
    oneRatio >= TARGET.throughputRatio, ratio(oneRatio)],
  ['ack p99, 1 in flight', `${f(ingestMedian(r => r.durableOne.p99), 2)} ms`, `${f(ingestMedian(r => r.bareOne.p99), 2)} ms`, `≤ ${TARGET.p99OverBare}× bare`,
    p99Ratio <= TARGET.p99OverBare, `${ratio(p99Ratio)}×`],
  ['disk per message', `${f(bytesPerMessage)} B`, '', `≤ ${TARGET.bytesPerMessage} B`, bytesPerMessage <= TARGET.bytesPerMessage, ''],
  ['replay', `${f(replay.rate)} ev/s`, '', `≥ ${f(TARGET.replay)} ev/s`, replay.rate >= TARGET.replay, ''],
  ['verify', `${f(verify.rate)} ev/s`, '', `≥ ${f(TARGET.verify)} ev/s`, verify.rate >= TARGET.verify, ''],
  ['SSE p99, alone', `${f(sseAlone, 2)} ms`, '', `≤ ${TARGET.sseP99} ms`, sseAlone <= TARGET.sseP99 && everyProbeArrived, ''],
  ['SSE p99, under load', `${f(sseUnderLoad, 2)} ms at ${f(rateUnderLoad)} msg/s`, '', `≤ ${TARGET.sseP99UnderLoad} ms at > ${f(TARGET.rateUnderLoad)} msg/s`,
    sseUnderLoad <= TARGET.sseP99UnderLoad && everyProbeArrived && rateUnderLoad > TARGET.rateUnderLoad, '']
]
const table = [['figure', 'devicelog', 'bare', 'target', 'met?'], ...rows.map(([figure, d, b, target, met, value]) =>
  [figure, d, b, target, `${met ? 'yes' : 'NO'}${value === '' ? '' : ` (${value})`}`])]
const widths = table[0]!.map((_, column) => Math.max(...table.map(row => row[column]!.length)))
console.log()
console.log(`the median of ${REPEATS} run${REPEATS === 1 ? '' : 's'} (a ratio: the median of the runs' ratios)`)
for (const row of table) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ').trimEnd())
if (committed !== acknowledged) process.exitCode = 1
