// The latency probe, its own process so that neither the service's nor the load's event loop
// delays what it times: one sensor publishes a QoS 1 measurement every `intervalMs`, each with a
// timestamp of its own, and the probe times it to its arrival on the network's server-sent events
// (GET /streams/<network>) and on the sensor's WebSocket `measurements` channel.
// Prints one JSON line: latencies (ms) per path and how many of the messages each path delivered.
import { get, type IncomingMessage } from 'node:http'
import { performance } from 'node:perf_hooks'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { measurementsMessage } from './payload.ts'

export interface ProbeSpec {
  mqttUrl: string
  httpUrl: string
  token: string
  network: string
  sensor: { id: string, password: string }
  count: number
  intervalMs: number
}

const spec = JSON.parse(process.argv[2]!) as ProbeSpec
/** Published measurements by timestamp: when each left, and when each path delivered it. */
const sentAt = new Map<number, number>()
const arrivals = { sse: [] as number[], ws: [] as number[], ack: [] as number[] }
const SETTLE_MS = 2000

function arrived (path: 'sse' | 'ws', timestamp: number, at: number): void {
  const sent = sentAt.get(timestamp)
  if (sent !== undefined) arrivals[path].push(at - sent)
}

/** Opens the event stream; resolves once the service has answered with its first frame. */
function openEventStream (): Promise<IncomingMessage> {
  const url = `${spec.httpUrl}/streams/${spec.network}?access_token=${spec.token}`
  return new Promise((resolve, reject) => {
    get(url, response => {
      if (response.statusCode !== 200) return reject(new Error(`GET /streams: ${response.statusCode}`))
      response.setEncoding('utf8')
      let buffer = ''
      let first = true
      response.on('data', (chunk: string) => {
        const at = performance.now()
        buffer += chunk
        const frames = buffer.split('\n\n')
        buffer = frames.pop()!
        for (const frame of frames) readFrame(frame, at)
        if (first) { first = false; resolve(response) }
      })
    }).on('error', reject)
  })
}

/** A `measurements` frame of the probe sensor; the load's frames share the stream and are skipped unparsed. */
function readFrame (frame: string, at: number): void {
  if (!frame.includes('event: measurements') || !frame.includes(spec.sensor.id)) return
  const data = frame.split('\n').find(line => line.startsWith('data: '))
  if (data === undefined) return
  const { measurements } = JSON.parse(data.slice(6)) as { measurements: Array<{ creation_timestamp: number }> }
  for (const m of measurements) arrived('sse', m.creation_timestamp, at)
}

/** Opens the device channel; resolves once the subscription is confirmed. */
function openDeviceChannel (): Promise<WebSocket> {
  const url = `${spec.httpUrl.replace(/^http/, 'ws')}/api/v1/devices/${spec.sensor.id}/ws?access_token=${spec.token}`
  const socket = new WebSocket(url)
  return new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.once('open', () => socket.send(JSON.stringify({ type: 'subscribe', channels: ['measurements'] })))
    socket.on('message', raw => {
      const at = performance.now()
      const message = JSON.parse(raw.toString()) as { type: string, data: Array<{ creation_timestamp: number }> | null }
      if (message.type === 'subscribed') resolve(socket)
      else if (message.type === 'measurements' && message.data !== null) for (const m of message.data) arrived('ws', m.creation_timestamp, at)
    })
  })
}

/** Publishes `count` messages `intervalMs` apart, not waiting for acknowledgements. */
async function publishAll (connection: mqtt.MqttClient): Promise<void> {
  const topic = `measurements/${spec.sensor.id}`
  const acks: Array<Promise<void>> = []
  let lastMs = 0
  for (let i = 0; i < spec.count; i++) {
    // A whole millisecond, unique, so that each arrival finds its publish.
    lastMs = Math.max(Date.now(), lastMs + 1)
    const timestamp = lastMs / 1000
    const payload = measurementsMessage(i, timestamp)
    const sent = performance.now()
    sentAt.set(timestamp, sent)
    acks.push(connection.publishAsync(topic, payload, { qos: 1 }).then(() => { arrivals.ack.push(performance.now() - sent) }))
    await new Promise(resolve => setTimeout(resolve, spec.intervalMs))
  }
  await Promise.all(acks)
}

/** Waits until both paths delivered every message, or SETTLE_MS passed. */
async function settle (): Promise<void> {
  const until = performance.now() + SETTLE_MS
  while (performance.now() < until && (arrivals.sse.length < spec.count || arrivals.ws.length < spec.count)) {
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

function summary (latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b)
  const percentile = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
  return { received: sorted.length, p50: percentile(0.5), p99: percentile(0.99), max: sorted.at(-1) ?? NaN }
}

const stream = await openEventStream()
const channel = await openDeviceChannel()
const connection = await mqtt.connectAsync(spec.mqttUrl, { username: spec.sensor.id, password: spec.sensor.password, reconnectPeriod: 0 })
await publishAll(connection)
await settle()
await connection.endAsync()
channel.close()
stream.destroy()
process.stdout.write(JSON.stringify({ published: spec.count, acknowledged: arrivals.ack.length, sse: summary(arrivals.sse), ws: summary(arrivals.ws), ack: summary(arrivals.ack) }) + '\n')
