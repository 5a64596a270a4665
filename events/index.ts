import type { z } from 'zod'
import type { EventDefinition } from './define.ts'
import * as accounts from './accounts.ts'
import * as audit from './audit.ts'
import * as chargers from './chargers.ts'
import * as devices from './devices.ts'
import * as homeAssistant from './home-assistant.ts'
import * as hosts from './hosts.ts'
import * as irrigation from './irrigation.ts'
import * as sensors from './sensors.ts'
import * as sockets from './sockets.ts'

export * from './define.ts'
export * as accounts from './accounts.ts'
export * as audit from './audit.ts'
export * as chargers from './chargers.ts'
export * as devices from './devices.ts'
export * as homeAssistant from './home-assistant.ts'
export * as hosts from './hosts.ts'
export * as irrigation from './irrigation.ts'
export * as sensors from './sensors.ts'
export * as sockets from './sockets.ts'

/** Every event type the log may hold, by name. */
export const eventDefinitions = {
  UserRegistered: accounts.UserRegistered,
  AccessTokenIssued: accounts.AccessTokenIssued,
  AccessTokenRevoked: accounts.AccessTokenRevoked,
  AuthenticationFailed: accounts.AuthenticationFailed,
  NetworkCreated: accounts.NetworkCreated,
  NetworkMemberAdded: accounts.NetworkMemberAdded,
  SensorRegistered: sensors.SensorRegistered,
  SensorConfigurationRevised: sensors.SensorConfigurationRevised,
  HeartbeatsReceived: sensors.HeartbeatsReceived,
  ConfigurationAcknowledged: sensors.ConfigurationAcknowledged,
  MeasurementsRecorded: sensors.MeasurementsRecorded,
  LogMessagesRecorded: sensors.LogMessagesRecorded,
  MessageRejected: devices.MessageRejected,
  SubscriptionRefused: devices.SubscriptionRefused,
  ConnectionRefused: devices.ConnectionRefused,
  DeviceConnected: devices.DeviceConnected,
  DeviceDisconnected: devices.DeviceDisconnected,
  RefusalsSummarized: devices.RefusalsSummarized,
  SourceBlocked: devices.SourceBlocked,
  SocketRegistered: sockets.SocketRegistered,
  SocketCommanded: sockets.SocketCommanded,
  PowerReported: sockets.PowerReported,
  PowerCommandUnanswered: sockets.PowerCommandUnanswered,
  PowerResent: sockets.PowerResent,
  EnergyReported: sockets.EnergyReported,
  SocketStatusReported: sockets.SocketStatusReported,
  SocketInfoReported: sockets.SocketInfoReported,
  SocketAvailabilityReported: sockets.SocketAvailabilityReported,
  SocketMessageReceived: sockets.SocketMessageReceived,
  InstanceStarted: sockets.InstanceStarted,
  InstanceStartRefused: sockets.InstanceStartRefused,
  InstanceStartFailed: sockets.InstanceStartFailed,
  InstanceStopped: sockets.InstanceStopped,
  InstanceDeleted: sockets.InstanceDeleted,
  EmergencyStopped: sockets.EmergencyStopped,
  EmergencyRecovered: sockets.EmergencyRecovered,
  WaitStarted: sockets.WaitStarted,
  WaitEnded: sockets.WaitEnded,
  CallbackAttempted: sockets.CallbackAttempted,
  ZoneRegistered: irrigation.ZoneRegistered,
  ManualModeStarted: irrigation.ManualModeStarted,
  TimerModeStarted: irrigation.TimerModeStarted,
  ZoneRunEnded: irrigation.ZoneRunEnded,
  ZoneCommandIgnored: irrigation.ZoneCommandIgnored,
  ValveStateReported: irrigation.ValveStateReported,
  ValveMismatchDetected: irrigation.ValveMismatchDetected,
  ChargerRegistered: chargers.ChargerRegistered,
  ChargerRemoved: chargers.ChargerRemoved,
  StateOfChargeReported: chargers.StateOfChargeReported,
  ChargingStatusChanged: chargers.ChargingStatusChanged,
  HostRegistered: hosts.HostRegistered,
  SystemInfoReported: hosts.SystemInfoReported,
  ProcessesReported: hosts.ProcessesReported,
  NetworkInterfacesReported: hosts.NetworkInterfacesReported,
  MetricsReported: hosts.MetricsReported,
  HomeAssistantAccountCreated: homeAssistant.HomeAssistantAccountCreated,
  HomeAssistantStatusReported: homeAssistant.HomeAssistantStatusReported,
  HomeAssistantCommandReceived: homeAssistant.HomeAssistantCommandReceived,
  HomeAssistantMessageRelayed: homeAssistant.HomeAssistantMessageRelayed,
  ChainCheckpoint: audit.ChainCheckpoint
} as const satisfies Record<string, EventDefinition>

type Definitions = typeof eventDefinitions
export type EventType = keyof Definitions

/** A new event, before the log gives it a position: a discriminated union over every type. */
export type DomainEvent = {
  [K in EventType]: { type: K, data: z.infer<Definitions[K]['schema']> }
}[EventType]

export type EventOf<K extends EventType> = Extract<DomainEvent, { type: K }>

/**
 * Upcasters turn data written with an older schema version into the current shape, keyed by
 * `<type>@<version>`. None yet: every type is at version 1.
 */
export const upcasters: Record<string, (data: unknown) => unknown> = {}

export function isEventType (type: string): type is EventType {
  return Object.hasOwn(eventDefinitions, type)
}
