import type { EventType } from '../../events/index.ts'
import { chargingStatusOf } from '../chargers/decider.ts'
import type { HostQueries } from '../hosts/projections.ts'
import type { SensorQueries } from '../sensors/projections.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import type { DeviceQueries } from './projections.ts'
import { SEEN_TYPES, type RegisteredDevice, type RegistryQueries } from './registry.ts'

export interface ChannelContext {
  registry: RegistryQueries
  devices: DeviceQueries
  sensors: SensorQueries
  hosts: HostQueries
}

/**
 * A live channel is data: the event types that update it, and the message each one becomes.
 * Its snapshot is the message of the latest such event on the device's stream.
 */
export interface LiveChannel {
  readonly name: string
  readonly types: readonly EventType[]
  view(event: RecordedEvent, device: RegisteredDevice, context: ChannelContext): unknown
  /** When no event of the channel exists yet. */
  empty?(device: RegisteredDevice, context: ChannelContext): unknown
  /**
   * The view reads the projections, which hold a whole committed group by the time it is
   * pushed: one update per group then, with the position of the group's last such event.
   */
  readsProjections?: boolean
  /**
   * At most one update per device this often, except for the listed types (always pushed at
   * once); an update held back is pushed when the interval ends.
   */
  throttle?: { ms: number, except: readonly EventType[] }
}

/** The dashboard's charts: the last 30 points. */
export const HISTORY_POINTS = 30
/** `02:05 PM`, as the reference formats its chart labels. */
const chartTime = (iso: string) => new Date(iso).toLocaleTimeString('en-US', { hour: '2-digit', minute: '2-digit' })
const MiB = 1024 * 1024

function status (device: RegisteredDevice, { registry, devices }: ChannelContext) {
  const presence = devices.presence(device.stream_id)
  return { online: presence.online, last_seen: registry.lastSeen(device.stream_id), connected_since: presence.online ? presence.since : null }
}

function history (device: RegisteredDevice, { hosts }: ChannelContext) {
  const points = hosts.history(device.device_id, HISTORY_POINTS)
  return {
    cpu: points.map(p => ({ time: chartTime(p.recorded_at), value: Math.round(p.cpu_usage) })),
    memory: points.map(p => ({ time: chartTime(p.recorded_at), used: Math.round(p.memory_usage / MiB), available: Math.round((p.memory_total - p.memory_usage) / MiB) })),
    network: points.map(p => ({ time: chartTime(p.recorded_at), download: p.network_rx, upload: p.network_tx }))
  }
}

export const liveChannels: readonly LiveChannel[] = [
  {
    // Connects and disconnects are pushed at once; the device's reports move last_seen, and
    // are pushed at most every 10 s (a sensor reporting 10 times a second is not 10 pushes).
    name: 'status',
    types: SEEN_TYPES,
    view: (_e, device, context) => status(device, context),
    empty: status,
    readsProjections: true,
    throttle: { ms: 10_000, except: ['DeviceConnected', 'DeviceDisconnected'] }
  },
  {
    name: 'measurements',
    types: ['MeasurementsRecorded'],
    view: e => e.type === 'MeasurementsRecorded'
      ? e.data.measurements.map(m => ({ revision: m.revision, creation_timestamp: m.timestamp, measurement: m.value }))
      : undefined
  },
  {
    name: 'logs',
    types: ['LogMessagesRecorded'],
    view: e => e.type === 'LogMessagesRecorded'
      ? e.data.log_messages.map(l => ({ revision: l.revision, creation_timestamp: l.timestamp, severity: l.severity, subject: l.subject, details: l.details ?? null }))
      : undefined
  },
  { name: 'heartbeats', types: ['HeartbeatsReceived'], view: e => e.type === 'HeartbeatsReceived' ? e.data.heartbeats : undefined },
  {
    name: 'configuration',
    types: ['SensorRegistered', 'SensorConfigurationRevised', 'ConfigurationAcknowledged'],
    readsProjections: true,
    view: (_e, device, { sensors }) => {
      const sensor = sensors.sensor(device.device_id)
      const revision = sensor === undefined ? undefined : sensors.configuration(sensor.sensor_id, sensor.revision)
      if (revision === undefined) return null
      return {
        revision: revision.revision,
        configuration: JSON.parse(revision.configuration),
        revised_at: revision.revised_at,
        acknowledged: revision.acknowledged_at !== null,
        acknowledged_at: revision.acknowledged_at,
        success: revision.success === null ? null : revision.success === 1
      }
    }
  },
  { name: 'system-info', types: ['SystemInfoReported'], view: e => e.type === 'SystemInfoReported' ? e.data.system_info : undefined },
  { name: 'processes', types: ['ProcessesReported'], view: e => e.type === 'ProcessesReported' ? { top_processes: e.data.top_processes } : undefined },
  { name: 'network-interfaces', types: ['NetworkInterfacesReported'], view: e => e.type === 'NetworkInterfacesReported' ? { interfaces: e.data.interfaces } : undefined },
  {
    name: 'history',
    types: ['MetricsReported'],
    readsProjections: true,
    view: (_e, device, context) => history(device, context),
    empty: history
  },
  {
    // The reference's own dashboard subscribes to it: each metrics report as the agent sent it.
    name: 'metrics',
    types: ['MetricsReported'],
    view: e => {
      if (e.type !== 'MetricsReported') return undefined
      const { device_identifier: _, ...metrics } = e.data
      return metrics
    }
  },
  /** Every event of the device's stream as it commits (no snapshot): for views that re-read an API. */
  { name: 'events', types: [], view: e => ({ type: e.type, recorded_at: e.recorded_at, data: e.data }) },
  {
    name: 'charging',
    types: ['StateOfChargeReported'],
    view: e => e.type === 'StateOfChargeReported' ? { soc: e.data.soc, status: chargingStatusOf(e.data.soc) } : undefined
  }
]

export const channelByName = new Map(liveChannels.map(c => [c.name, c]))
export const everyEvent = channelByName.get('events')!
export const channelsByType = new Map<string, LiveChannel[]>()
for (const channel of liveChannels) {
  for (const type of channel.types) channelsByType.set(type, [...(channelsByType.get(type) ?? []), channel])
}
