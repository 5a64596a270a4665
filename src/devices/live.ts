import type { WebSocket } from 'ws'
import { z } from 'zod'
import type { Clock } from '../clock.ts'
import { Audiences } from '../live/audiences.ts'
import { LatestEvery } from '../live/latest-every.ts'
import { sendBounded } from '../live/websocket.ts'
import type { EventStore } from '../store/event-store.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import type { ChannelContext, LiveChannel, LiveChannels } from './live-channels.ts'
import type { RegisteredDevice } from './registry.ts'

const ClientMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscribe'), channels: z.array(z.string()).min(1).max(50) }),
  z.object({ type: z.literal('unsubscribe'), channels: z.array(z.string()).min(1).max(50) }),
  z.object({ type: z.literal('ping') })
])

interface Client {
  socket: WebSocket
  device: RegisteredDevice
  channels: Set<string>
}

/**
 * `/api/v1/devices/<id>/ws`: a dashboard subscribes to channels of one device and gets each
 * channel's snapshot once, then an update as each relevant event commits (the reference polled
 * its database every 30 to 60 s per device). Messages carry the log position that produced them.
 */
export function createDeviceLive (store: EventStore, clock: Clock, channels: LiveChannels, context: ChannelContext) {
  const byStream = new Audiences<Client>()
  const send = (client: Client, message: unknown) => sendBounded(client.socket, JSON.stringify(message))

  function snapshot (client: Client, channel: LiveChannel) {
    const position = context.registry.latestPosition(client.device.stream_id, channel.types)
    const event = position === null ? undefined : store.read({ after: position - 1, limit: 1 })[0]
    const data = event === undefined ? (channel.empty?.(client.device, context) ?? null) : channel.view(event, client.device, context)
    send(client, { type: channel.name, data, position })
  }

  /** The update `event` makes to `channel`, to each of the stream's clients that subscribed to it. */
  function push (channel: LiveChannel, event: RecordedEvent) {
    const listeners = [...byStream.of(event.stream_id) ?? []].filter(client => client.channels.has(channel.name))
    if (listeners.length === 0) return
    // Serialised once per update, whatever the number of clients.
    const text = JSON.stringify({ type: channel.name, data: channel.view(event, listeners[0]!.device, context), position: event.position })
    for (const client of listeners) sendBounded(client.socket, text)
  }
  /** One per channel that has a throttle, keyed by stream. */
  const throttled = new Map<string, LatestEvery<RecordedEvent>>()
  const offer = (channel: LiveChannel, event: RecordedEvent, urgent: boolean) => {
    if (channel.throttle === undefined) return push(channel, event)
    let throttle = throttled.get(channel.name)
    if (throttle === undefined) throttled.set(channel.name, throttle = new LatestEvery<RecordedEvent>(clock, channel.throttle.ms, (_stream, e) => push(channel, e)))
    if ([...byStream.of(event.stream_id) ?? []].some(client => client.channels.has(channel.name))) throttle.offer(event.stream_id, event, urgent)
  }

  const unsubscribe = store.subscribe(events => {
    if (byStream.size === 0) return
    const latest = new Map<string, { channel: LiveChannel, event: RecordedEvent, urgent: boolean }>()
    for (const event of events) {
      if (byStream.of(event.stream_id) === undefined) continue
      for (const channel of [...channels.updatedBy(event.type), channels.everyEvent]) {
        const urgent = channel.throttle?.except.includes(event.type) ?? false
        if (channel.readsProjections !== true) { offer(channel, event, urgent); continue }
        const key = `${event.stream_id}:${channel.name}`
        latest.set(key, { channel, event, urgent: urgent || (latest.get(key)?.urgent ?? false) })
      }
    }
    for (const { channel, event, urgent } of latest.values()) offer(channel, event, urgent)
  })

  function onMessage (client: Client, raw: string) {
    let json: unknown
    try {
      json = JSON.parse(raw)
    } catch {
      return send(client, { type: 'error', message: 'not JSON' })
    }
    const parsed = ClientMessage.safeParse(json)
    if (!parsed.success) return send(client, { type: 'error', message: 'expected {"type": "subscribe"|"unsubscribe", "channels": [...]} or {"type": "ping"}' })
    const message = parsed.data
    if (message.type === 'ping') return send(client, { type: 'pong', data: { timestamp: new Date(clock.now()).toISOString() } })
    const unknown = message.channels.filter(name => channels.named(name) === undefined)
    if (unknown.length > 0) send(client, { type: 'error', message: `unknown channel: ${unknown.join(', ')}; channels are ${channels.names.join(', ')}` })
    const known = message.channels.filter(name => channels.named(name) !== undefined)
    if (known.length === 0) return
    if (message.type === 'unsubscribe') {
      for (const name of known) client.channels.delete(name)
      return send(client, { type: 'unsubscribed', channels: known })
    }
    const added = known.filter(name => !client.channels.has(name))
    for (const name of added) client.channels.add(name)
    send(client, { type: 'subscribed', channels: known })
    for (const name of added) snapshot(client, channels.named(name)!)
  }

  return {
    join (device: RegisteredDevice, socket: WebSocket) {
      const client: Client = { socket, device, channels: new Set() }
      const leave = byStream.join(device.stream_id, client)
      socket.on('message', (raw, isBinary) => onMessage(client, isBinary ? '' : raw.toString()))
      socket.on('close', () => {
        leave()
        if (byStream.of(device.stream_id) === undefined) for (const throttle of throttled.values()) throttle.forget(key => key === device.stream_id)
      })
      send(client, { type: 'connected', data: { deviceUuid: device.device_id, timestamp: new Date(clock.now()).toISOString() } })
    },
    close () {
      unsubscribe()
      for (const throttle of throttled.values()) throttle.clear()
      for (const client of byStream.members()) client.socket.close(1001, 'service stopping')
      byStream.clear()
    }
  }
}
export type DeviceLive = ReturnType<typeof createDeviceLive>
