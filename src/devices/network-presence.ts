import type { WebSocket } from 'ws'
import type { Clock } from '../clock.ts'
import { Audiences } from '../live/audiences.ts'
import { sendBounded } from '../live/websocket.ts'
import type { EventStore } from '../store/event-store.ts'
import type { DeviceQueries } from './projections.ts'
import { SEEN_TYPES, type RegisteredDevice, type RegistryQueries } from './registry.ts'

/** Reports move last_seen; per device, at most one push this often (connects and disconnects at once). */
const SEEN_THROTTLE_MS = 10_000
const seen = new Set<string>(SEEN_TYPES)

/**
 * `/api/v1/networks/<id>/presence`: the online state and last seen of every device of a network
 * on one WebSocket (a dashboard of many devices needs no socket per device). A snapshot of all
 * at connect, then one message per change as its event commits.
 */
export function createNetworkPresence (store: EventStore, clock: Clock, registry: RegistryQueries, devices: DeviceQueries) {
  const byNetwork = new Audiences<WebSocket>()
  const lastPush = new Map<string, number>()

  const statusOf = (device: RegisteredDevice) => {
    const presence = devices.presence(device.stream_id)
    return { id: device.device_id, kind: device.kind, online: presence.online, last_seen: registry.lastSeen(device.stream_id), connected_since: presence.online ? presence.since : null }
  }

  const unsubscribe = store.subscribe(events => {
    if (byNetwork.size === 0) return
    for (const event of events) {
      if (!seen.has(event.type)) continue
      const device = registry.deviceOfStream(event.stream_id)
      const audience = device === undefined ? undefined : byNetwork.of(device.network_id)
      if (device === undefined || audience === undefined) continue
      const change = event.type === 'DeviceConnected' || event.type === 'DeviceDisconnected'
      if (!change && clock.now() - (lastPush.get(device.stream_id) ?? -Infinity) < SEEN_THROTTLE_MS) continue
      lastPush.set(device.stream_id, clock.now())
      const text = JSON.stringify({ type: 'status', data: statusOf(device), position: event.position })
      for (const socket of audience) sendBounded(socket, text)
    }
  })

  return {
    join (networkId: string, socket: WebSocket) {
      socket.on('close', byNetwork.join(networkId, socket))
      sendBounded(socket, JSON.stringify({ type: 'snapshot', data: registry.devicesOf(networkId).map(statusOf), position: store.headPosition }))
    },
    close () {
      unsubscribe()
      for (const socket of byNetwork.members()) socket.close(1001, 'service stopping')
      byNetwork.clear()
    }
  }
}
export type NetworkPresence = ReturnType<typeof createNetworkPresence>
