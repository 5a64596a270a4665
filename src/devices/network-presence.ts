import type { WebSocket } from 'ws'
import type { Clock } from '../clock.ts'
import { Audiences } from '../live/audiences.ts'
import { LatestEvery } from '../live/latest-every.ts'
import { sendBounded } from '../live/websocket.ts'
import type { EventStore } from '../store/event-store.ts'
import { presenceStatus } from './presence-status.ts'
import type { DeviceQueries } from './projections.ts'
import { SEEN_TYPES, type RegisteredDevice, type RegistryQueries } from './registry.ts'

/** Reports move last_seen; per device, at most one push this often, the last held back until then (connects and disconnects at once). */
const SEEN_THROTTLE_MS = 10_000
const seen = new Set<string>(SEEN_TYPES)

/**
 * `/api/v1/networks/<id>/presence`: the online state and last seen of every device of a network
 * on one WebSocket (a dashboard of many devices needs no socket per device). A snapshot of all
 * at connect, then one message per change as its event commits.
 */
export function createNetworkPresence (store: EventStore, clock: Clock, registry: RegistryQueries, devices: DeviceQueries) {
  const byNetwork = new Audiences<WebSocket>()

  const statusOf = (device: RegisteredDevice) => ({ id: device.device_id, kind: device.kind, ...presenceStatus(device, { registry, devices }) })
  const push = (device: RegisteredDevice, position: number) => {
    const audience = byNetwork.of(device.network_id)
    if (audience === undefined) return
    const text = JSON.stringify({ type: 'status', data: statusOf(device), position })
    for (const socket of audience) sendBounded(socket, text)
  }
  const throttle = new LatestEvery<{ device: RegisteredDevice, position: number }>(clock, SEEN_THROTTLE_MS, (_stream, { device, position }) => push(device, position))

  const unsubscribe = store.subscribe(events => {
    if (byNetwork.size === 0) return
    // The status reads the projections, which hold the whole group: one update per device and group.
    const latest = new Map<string, { device: RegisteredDevice, position: number, urgent: boolean }>()
    for (const event of events) {
      if (!seen.has(event.type)) continue
      const device = registry.deviceOfStream(event.stream_id)
      if (device === undefined || byNetwork.of(device.network_id) === undefined) continue
      const urgent = event.type === 'DeviceConnected' || event.type === 'DeviceDisconnected'
      latest.set(event.stream_id, { device, position: event.position, urgent: urgent || (latest.get(event.stream_id)?.urgent ?? false) })
    }
    for (const [stream, { device, position, urgent }] of latest) throttle.offer(stream, { device, position }, urgent)
  })

  return {
    join (networkId: string, socket: WebSocket) {
      const leave = byNetwork.join(networkId, socket)
      socket.on('close', () => {
        leave()
        if (byNetwork.of(networkId) === undefined) throttle.forget(stream => registry.deviceOfStream(stream)?.network_id === networkId)
      })
      sendBounded(socket, JSON.stringify({ type: 'snapshot', data: registry.devicesOf(networkId).map(statusOf), position: store.headPosition }))
    },
    close () {
      unsubscribe()
      throttle.clear()
      for (const socket of byNetwork.members()) socket.close(1001, 'service stopping')
      byNetwork.clear()
    }
  }
}
export type NetworkPresence = ReturnType<typeof createNetworkPresence>
