import type { DeviceQueries } from './projections.ts'
import type { RegisteredDevice, RegistryQueries } from './registry.ts'

/** What presence says of a device: the device list, its `status` channel and the network's presence socket all show this. */
export interface PresenceStatus { online: boolean, last_seen: string | null, connected_since: string | null }

export function presenceStatus (device: RegisteredDevice, { registry, devices }: { registry: RegistryQueries, devices: DeviceQueries }): PresenceStatus {
  const presence = devices.presence(device.stream_id)
  return { online: presence.online, last_seen: registry.lastSeen(device.stream_id), connected_since: presence.online ? presence.since : null }
}
