import type { WebSocket } from 'ws'
import { z } from 'zod'
import type { Clock } from '../clock.ts'
import { Audiences } from '../live/audiences.ts'
import { sendBounded } from '../live/websocket.ts'
import type { EventStore } from '../store/event-store.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { channelByName, channelsByType, everyEvent, type ChannelContext, type LiveChannel } from './live-channels.ts'
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
export function createDeviceLive (store: EventStore, clock: Clock, context: ChannelContext) {
  const byStream = new Audiences<Client>()
  /** When each throttled channel of each watched stream last pushed. */
  const lastPush = new Map<string, number>()
  const send = (client: Client, message: unknown) => sendBounded(client.socket, JSON.stringify(message))

  function snapshot (client: Client, channel: LiveChannel) {
    const position = context.registry.latestPosition(client.device.stream_id, channel.types)
    const event = position === null ? undefined : store.read({ after: position - 1, limit: 1 })[0]
    const data = event === undefined ? (channel.empty?.(client.device, context) ?? null) : channel.view(event, client.device, context)
    send(client, { type: channel.name, data, position })
  }

  const unsubscribe = store.subscribe(events => {
    if (byStream.size === 0) return
    for (const event of events) {
      const audience = byStream.of(event.stream_id)
      if (audience === undefined) continue
      for (const channel of [...(channelsByType.get(event.type) ?? []), everyEvent]) {
        if (channel.throttle !== undefined && !channel.throttle.except.includes(event.type)) {
          const key = `${event.stream_id}:${channel.name}`
          if (clock.now() - (lastPush.get(key) ?? -Infinity) < channel.throttle.ms) continue
        }
        if (channel.throttle !== undefined) lastPush.set(`${event.stream_id}:${channel.name}`, clock.now())
        let text: string | undefined
        for (const client of audience) {
          if (!client.channels.has(channel.name)) continue
          // Serialised once per event and channel, whatever the number of clients.
          text ??= JSON.stringify({ type: channel.name, data: channel.view(event as RecordedEvent, client.device, context), position: event.position })
          sendBounded(client.socket, text)
        }
      }
    }
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
    const unknown = message.channels.filter(name => !channelByName.has(name))
    if (unknown.length > 0) send(client, { type: 'error', message: `unknown channel: ${unknown.join(', ')}; channels are ${[...channelByName.keys()].join(', ')}` })
    const known = message.channels.filter(name => channelByName.has(name))
    if (known.length === 0) return
    if (message.type === 'unsubscribe') {
      for (const name of known) client.channels.delete(name)
      return send(client, { type: 'unsubscribed', channels: known })
    }
    const added = known.filter(name => !client.channels.has(name))
    for (const name of added) client.channels.add(name)
    send(client, { type: 'subscribed', channels: known })
    for (const name of added) snapshot(client, channelByName.get(name)!)
  }

  return {
    join (device: RegisteredDevice, socket: WebSocket) {
      const client: Client = { socket, device, channels: new Set() }
      const leave = byStream.join(device.stream_id, client)
      socket.on('message', (raw, isBinary) => onMessage(client, isBinary ? '' : raw.toString()))
      socket.on('close', () => {
        leave()
        if (byStream.of(device.stream_id) === undefined) {
          for (const key of lastPush.keys()) if (key.startsWith(`${device.stream_id}:`)) lastPush.delete(key)
        }
      })
      send(client, { type: 'connected', data: { deviceUuid: device.device_id, timestamp: new Date(clock.now()).toISOString() } })
    },
    close () {
      unsubscribe()
      for (const client of byStream.members()) client.socket.close(1001, 'service stopping')
      byStream.clear()
    }
  }
}
export type DeviceLive = ReturnType<typeof createDeviceLive>
