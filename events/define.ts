import { z } from 'zod'

/**
 * An event type of the log: its name (past tense), the schema version it is written with,
 * and the zod schema of its data. A schema is never changed in place: a new version gets
 * a new definition and an upcaster from the old one (see events/index.ts). The one change
 * made in place is a compatible widening, which keeps the version: a new member of an enum
 * (`AuthenticationFailed.reason` gained `too_many_attempts`, `DeviceDisconnected.reason`
 * `too_many_refusals` and `service_stopped`, `RejectionReason` `rate_exceeded` and
 * `source_blocked`) or a new optional field, because every event already written still
 * parses. Readers of a widened field handle every member (a `never` default in each switch).
 */
export interface EventDefinition<T extends string = string, S extends z.ZodType = z.ZodType> {
  readonly type: T
  readonly version: number
  readonly schema: S
  /**
   * The data's first field, when it repeats the id its stream is named by (`sensor_identifier`
   * in `sensor-<id>`): the log stores it once, in the stream's name, and gives it back on reading.
   */
  readonly streamKey?: string
}

export function defineEvent<T extends string, S extends z.ZodType> (
  type: T,
  version: number,
  schema: S,
  options: { streamKey?: string } = {}
): EventDefinition<T, S> {
  return { type, version, schema, ...options }
}

/**
 * Who caused an event and which request or message it belongs to. Kept small: it is stored
 * with every event. Logs written before 2026-12 also carry `mqtt.client_id` and `mqtt.payload_sha256`.
 */
export const Metadata = z.object({
  /** `user:<id>`, `mqtt:<client id>`, `http:<address>`, `charger:<id>` or `system`. */
  actor: z.string(),
  /** The HTTP request that caused it, where there was one. */
  correlation_id: z.string().optional(),
  /** Several nodes on one log: on a device's connection and its end, the node holding the connection (its lease says whether it lives). */
  node: z.string().optional(),
  /** For events caused by a QoS 1 MQTT publish: enough to recognise its redelivery (DUP). */
  mqtt: z.object({
    message_id: z.number().int().optional(),
    /** CRC-32 of the payload: a reused message id with another payload is a new message. */
    crc32: z.number().int().optional(),
    client_id: z.string().optional(),
    payload_sha256: z.string().optional()
  }).optional()
})
export type Metadata = z.infer<typeof Metadata>

/** Unix seconds as a float, as the sensors send them. */
export const UnixSeconds = z.number().finite().nonnegative()

/**
 * Any JSON object: measurement values and configurations. Every input reaches us through
 * JSON.parse, so its members are JSON already; checking them again (z.json) would only cost.
 */
export const JsonObject = z.record(z.string(), z.unknown())
export type JsonObject = z.infer<typeof JsonObject>
