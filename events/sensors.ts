import { z } from 'zod'
import { defineEvent, JsonObject, UnixSeconds } from './define.ts'

// Stream: `sensor-<sensor id>`. The MQTT messages a sensor sends and receives are here too:
// they are as much part of the contract as the events.

const Revision = z.number().int().nonnegative()
const batchOf = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(1000)

export const Heartbeat = z.strictObject({
  revision: Revision,
  timestamp: UnixSeconds,
  /** Did the sensor successfully process the configuration? */
  success: z.boolean()
})
export const Measurement = z.strictObject({
  revision: Revision,
  timestamp: UnixSeconds,
  value: JsonObject
})
export const Severity = z.enum(['debug', 'info', 'warning', 'error'])
export const LogMessage = z.strictObject({
  severity: Severity,
  revision: Revision,
  timestamp: UnixSeconds,
  subject: z.string(),
  details: z.string().nullable().optional()
})

/** `heartbeats/<sensor id>` */
export const HeartbeatsMessage = z.strictObject({ heartbeats: batchOf(Heartbeat) })
/** `measurements/<sensor id>` */
export const MeasurementsMessage = z.strictObject({ measurements: batchOf(Measurement) })
/** `log-messages/<sensor id>` */
export const LogMessagesMessage = z.strictObject({ log_messages: batchOf(LogMessage) })
/** `configurations/<sensor id>`, published by the service, QoS 1, retained. */
export const ConfigurationMessage = z.object({ revision: Revision, configuration: JsonObject })

export type Heartbeat = z.infer<typeof Heartbeat>
export type Measurement = z.infer<typeof Measurement>
export type LogMessage = z.infer<typeof LogMessage>
export type ConfigurationMessage = z.infer<typeof ConfigurationMessage>

/** Reports on a sensor's stream store its id once, in the stream's name. */
const stream = { streamKey: 'sensor_identifier' }

export const SensorRegistered = defineEvent('SensorRegistered', 1, z.object({
  sensor_identifier: z.uuid(),
  sensor_name: z.string(),
  network_identifier: z.uuid(),
  configuration: JsonObject,
  /** SHA-256 of the sensor's MQTT password (a random 256-bit value). */
  mqtt_password_sha256: z.string()
}))

/** Revision 0 is the registration; every PUT makes the next one. */
export const SensorConfigurationRevised = defineEvent('SensorConfigurationRevised', 1, z.object({
  sensor_identifier: z.uuid(),
  revision: Revision,
  sensor_name: z.string(),
  network_identifier: z.uuid(),
  configuration: JsonObject
}))

export const HeartbeatsReceived = defineEvent('HeartbeatsReceived', 1, z.object({
  sensor_identifier: z.uuid(),
  heartbeats: z.array(Heartbeat)
}), stream)

/** The first heartbeat for a revision acknowledges it; later ones change nothing. */
export const ConfigurationAcknowledged = defineEvent('ConfigurationAcknowledged', 1, z.object({
  sensor_identifier: z.uuid(),
  revision: Revision,
  success: z.boolean(),
  /** The heartbeat's own timestamp. */
  acknowledged_at: UnixSeconds
}), stream)

export const MeasurementsRecorded = defineEvent('MeasurementsRecorded', 1, z.object({
  sensor_identifier: z.uuid(),
  measurements: z.array(Measurement)
}), stream)

export const LogMessagesRecorded = defineEvent('LogMessagesRecorded', 1, z.object({
  sensor_identifier: z.uuid(),
  log_messages: z.array(LogMessage)
}), stream)
