import { z } from 'zod'
import { EnergyReading, Power } from '../../events/sockets.ts'
import type { DeviceQueries } from '../devices/projections.ts'
import { expectedPower } from './decider.ts'
import { energyOf, type InstanceRow, type SocketQueries, type SocketRow } from './projections.ts'

// The reference's JSON shapes (InstanceData, serverData), read from the projections. The zod
// schemas are the routes' response schemas and the views' types.

const Timestamp = z.string().nullable()
export const Instance = z.object({
  id: z.string(),
  /** The plug's ENERGY reading when the instance started. */
  energy: EnergyReading.nullable(),
  timeout: z.number().nullable(),
  duration: z.number().nullable(),
  status: z.enum(['running', 'stopped', 'failed']),
  startTimestamp: z.string(),
  stopTimestamp: Timestamp,
  stopDueTimestamp: Timestamp,
  stopReason: z.string().nullable(),
  powerOnTimestamp: Timestamp,
  powerOffTimestamp: Timestamp,
  isEmergencyStopped: z.boolean(),
  isManuallyStopped: z.boolean(),
  /** ENERGY.Total counted between the instance's start and its stop (so far, while it runs). */
  energyKwh: z.number().nullable(),
  callbacks: z.array(z.object({
    url: z.string(),
    delivered: z.boolean(),
    nextAttemptTimestamp: Timestamp,
    attempts: z.array(z.object({ attempt: z.number(), at: z.string(), status: z.number().nullable(), error: z.string().nullable() }))
  }))
})
export type Instance = z.infer<typeof Instance>

export const ServerData = z.object({
  isEmergencyStopped: z.boolean(),
  energyToday: z.number(),
  initialEnergy: EnergyReading.nullable(),
  runningInstances: z.array(z.string()),
  runningInstancesWithTimeout: z.array(z.string()),
  powerStatus: z.array(z.object({
    powerOn: z.object({ instanceId: z.string(), timestamp: z.string() }),
    powerOff: z.object({ instanceId: z.string().nullable(), timestamp: z.string() }).nullable()
  })),
  power: Power.nullable(),
  connectedSocketName: z.string().nullable(),
  online: z.boolean()
})
export type ServerData = z.infer<typeof ServerData>

export const Socket = z.object({
  socket_identifier: z.string(),
  socket_name: z.string(),
  topic: z.string(),
  full_topic: z.string(),
  network_identifier: z.string(),
  online: z.boolean(),
  online_changed_at: Timestamp,
  power: Power.nullable(),
  expected_power: Power.nullable(),
  emergency_stopped: z.boolean(),
  running_instances: z.array(z.string()),
  energy: EnergyReading.nullable(),
  device: z.object({
    device_name: z.string().nullable(),
    firmware_version: z.string().nullable(),
    module: z.string().nullable(),
    hostname: z.string().nullable(),
    ip_address: z.string().nullable(),
    mac: z.string().nullable(),
    restart_reason: z.string().nullable()
  })
})
export type Socket = z.infer<typeof Socket>

const round = (kwh: number) => Math.round(kwh * 1e6) / 1e6

export function instanceView (sockets: SocketQueries, instance: InstanceRow): Instance {
  const start = energyOf(instance.energy_start)
  const socket = sockets.socket(instance.socket_id)
  // While it runs, what the plug has counted so far; once stopped, up to the first reading after.
  const end = instance.status === 'running' ? energyOf(socket?.last_energy ?? null) : energyOf(instance.energy_end)
  return {
    id: instance.instance_id,
    energy: start,
    timeout: instance.timeout_ms,
    duration: instance.duration_seconds,
    status: instance.status,
    startTimestamp: instance.started_at,
    stopTimestamp: instance.stopped_at,
    stopDueTimestamp: instance.stop_due_at,
    stopReason: instance.stop_reason ?? instance.failure,
    powerOnTimestamp: instance.power_on_at,
    powerOffTimestamp: instance.power_off_at,
    isEmergencyStopped: instance.stop_reason === 'emergency',
    isManuallyStopped: instance.stop_reason === 'pressed',
    energyKwh: start?.Total !== undefined && end?.Total !== undefined ? round(end.Total - start.Total) : null,
    callbacks: sockets.callbacks(instance.instance_id).map(callback => ({
      url: callback.url,
      delivered: callback.delivered === 1,
      nextAttemptTimestamp: callback.next_attempt_at,
      attempts: JSON.parse(callback.attempts) as Array<{ attempt: number, at: string, status: number | null, error: string | null }>
    }))
  }
}

/** The reference's serverData, for one socket: what `GET /api/download` saves. */
export function serverView (sockets: SocketQueries, devices: DeviceQueries, socket: SocketRow): ServerData {
  const state = sockets.state(socket)
  const running = state.status === 'registered' ? state.running : []
  const instances = sockets.instances(socket.socket_id)
  const last = energyOf(socket.last_energy)
  return {
    isEmergencyStopped: state.status === 'registered' && state.emergency,
    energyToday: last?.Today ?? 0,
    initialEnergy: energyOf(socket.initial_energy),
    runningInstances: running,
    runningInstancesWithTimeout: instances.filter(i => i.status === 'running' && i.stop_due_at !== null).map(i => i.instance_id),
    powerStatus: sockets.powerPeriods(socket.socket_id).map(period => ({
      powerOn: { instanceId: period.on_instance, timestamp: period.on_at },
      powerOff: period.off_at === null ? null : { instanceId: period.off_instance, timestamp: period.off_at }
    })),
    power: state.status === 'registered' ? state.power : null,
    connectedSocketName: socket.device_name,
    online: devices.presence(`socket-${socket.socket_id}`).online
  }
}

/** A socket as `GET /api/sockets` lists it: who it is, whether it is there, what it runs. */
export function socketView (sockets: SocketQueries, devices: DeviceQueries, socket: SocketRow): Socket {
  const state = sockets.state(socket)
  const presence = devices.presence(`socket-${socket.socket_id}`)
  const info = JSON.parse(socket.info) as Record<string, string>
  return {
    socket_identifier: socket.socket_id,
    socket_name: socket.socket_name,
    topic: socket.topic,
    full_topic: socket.full_topic,
    network_identifier: socket.network_id,
    online: presence.online,
    online_changed_at: presence.since,
    power: state.status === 'registered' ? state.power : null,
    expected_power: state.status === 'registered' ? expectedPower(state) : null,
    emergency_stopped: state.status === 'registered' && state.emergency,
    running_instances: state.status === 'registered' ? state.running : [],
    energy: energyOf(socket.last_energy),
    device: {
      device_name: socket.device_name,
      firmware_version: info.firmware_version ?? null,
      module: info.module ?? null,
      hostname: info.hostname ?? null,
      ip_address: info.ip_address ?? null,
      mac: socket.mac ?? info.mac ?? null,
      restart_reason: info.restart_reason ?? null
    }
  }
}
