import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { Detail } from '../http/schemas.ts'
import { Audiences } from '../live/audiences.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { BUCKET_SECONDS, type SensorQueries } from './projections.ts'

const SUMMARY_DAYS = 28
const BUCKETS = SUMMARY_DAYS * 24 * 60 * 60 / BUCKET_SECONDS
/** A client that lets this much pile up unread is dropped rather than buffered without bound. */
const MAX_UNREAD_BYTES = 1024 * 1024

export interface ActivityStreamOptions {
  sensors: SensorQueries
  summaryIntervalSeconds: number
}

function frame (event: string, data: unknown, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** What a committed event looks like on the stream, or undefined if it is not sensor activity. */
function activityOf (event: RecordedEvent): { sensorId: string, name: string, data: unknown } | undefined {
  switch (event.type) {
    case 'MeasurementsRecorded':
      return {
        sensorId: event.data.sensor_identifier,
        name: 'measurements',
        data: {
          sensor_identifier: event.data.sensor_identifier,
          position: event.position,
          measurements: event.data.measurements.map(m => ({ revision: m.revision, creation_timestamp: m.timestamp, measurement: m.value }))
        }
      }
    case 'LogMessagesRecorded':
      return {
        sensorId: event.data.sensor_identifier,
        name: 'log_messages',
        data: {
          sensor_identifier: event.data.sensor_identifier,
          position: event.position,
          log_messages: event.data.log_messages.map(l => ({
            revision: l.revision, creation_timestamp: l.timestamp, severity: l.severity, subject: l.subject, details: l.details ?? null
          }))
        }
      }
    case 'HeartbeatsReceived':
      return {
        sensorId: event.data.sensor_identifier,
        name: 'heartbeats',
        data: { sensor_identifier: event.data.sensor_identifier, position: event.position, heartbeats: event.data.heartbeats }
      }
    default:
      return undefined
  }
}

/**
 * GET /streams/<network>: server-sent events of the network's sensor activity, pushed as each
 * batch commits (never polled), and a periodic summary of measurement counts.
 */
const activityStream: FastifyPluginAsyncZod<ActivityStreamOptions> = async function (app, { sensors, summaryIntervalSeconds }) {
  const listeners = new Audiences<ServerResponse>()

  function send (response: ServerResponse, text: string): void {
    if (response.writableLength > MAX_UNREAD_BYTES) {
      response.destroy()
      return
    }
    response.write(text)
  }

  function summary (networkId: string): unknown {
    const nowSeconds = app.clock.now() / 1000
    const firstBucket = (Math.floor(nowSeconds / BUCKET_SECONDS) - BUCKETS + 1) * BUCKET_SECONDS
    const bySensor = new Map(sensors.sensorsOf(networkId).map(s => [s.sensor_id, { sensor_identifier: s.sensor_id, sensor_name: s.sensor_name, counts: new Array<number>(BUCKETS).fill(0) }]))
    for (const row of sensors.bucketCounts(networkId, firstBucket)) {
      const index = (row.bucket_start - firstBucket) / BUCKET_SECONDS
      const sensor = bySensor.get(row.sensor_id)
      if (sensor !== undefined && index < BUCKETS) sensor.counts[index] = row.count
    }
    return { generated_at: nowSeconds, bucket_seconds: BUCKET_SECONDS, first_bucket: firstBucket, sensors: [...bySensor.values()] }
  }

  // Each sensor's network, read once and then followed from the events that move it.
  const networkOfSensor = new Map<string, string | undefined>()
  const networkOf = (sensorId: string) => {
    if (!networkOfSensor.has(sensorId)) networkOfSensor.set(sensorId, sensors.networkOf(sensorId))
    return networkOfSensor.get(sensorId)
  }

  // One write per listener per committed group, however many events it holds.
  const unsubscribe = app.store.subscribe(events => {
    const frames = new Map<string, string>()
    for (const event of events) {
      if (event.type === 'SensorRegistered' || event.type === 'SensorConfigurationRevised') {
        networkOfSensor.set(event.data.sensor_identifier, event.data.network_identifier)
      }
      if (listeners.size === 0) continue
      const activity = activityOf(event)
      if (activity === undefined) continue
      const networkId = networkOf(activity.sensorId)
      if (networkId === undefined || listeners.of(networkId) === undefined) continue
      frames.set(networkId, (frames.get(networkId) ?? '') + frame(activity.name, activity.data, event.position))
    }
    for (const [networkId, text] of frames) for (const response of listeners.of(networkId) ?? []) send(response, text)
  })

  const timer = app.clock.setInterval(() => {
    for (const [networkId, audience] of listeners.entries()) {
      const text = frame('summary', summary(networkId))
      for (const response of audience) send(response, text)
    }
  }, summaryIntervalSeconds * 1000)

  app.addHook('preClose', async () => {
    timer.cancel()
    unsubscribe()
    for (const response of listeners.members()) response.end()
    listeners.clear()
  })

  app.get('/streams/:network_identifier', {
    onRequest: app.requireUser,
    schema: {
      description: 'Server-sent events: `measurements`, `log_messages`, `heartbeats` as each commits (`id:` is its log position), and `summary` on connect and every STREAM_SUMMARY_INTERVAL_SECONDS.',
      params: z.object({ network_identifier: z.string() }),
      response: { 200: { description: 'The event stream, open until the client leaves.', content: { 'text/event-stream': { schema: z.string() } } }, 401: Detail, 404: Detail }
    }
  }, async (request, reply) => {
    const networkId = request.params.network_identifier
    app.requireMember(networkId, request.userId)
    reply.hijack()
    app.endWhenRevoked(request)
    const response = reply.raw
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    response.on('close', listeners.join(networkId, response))
    send(response, frame('summary', summary(networkId)))
  })
}

export default activityStream
