import { z } from 'zod'

/**
 * An event type of the log: its name (past tense), the schema version it is written with,
 * and the zod schema of its data. A schema is never changed in place: a new version gets
 * a new definition and an upcaster from the old one (see events/index.ts).
 */
export interface EventDefinition<T extends string = string, S extends z.ZodType = z.ZodType> {
  readonly type: T
  readonly version: number
  readonly schema: S
}

export function defineEvent<T extends string, S extends z.ZodType> (
  type: T,
  version: number,
  schema: S
): EventDefinition<T, S> {
  return { type, version, schema }
}

/** Who caused an event and which request or message it belongs to. */
export const Metadata = z.object({
  /** `user:<id>`, `mqtt:<client id>` or `system`. */
  actor: z.string(),
  correlation_id: z.string(),
  /** For events caused by an MQTT publish: enough to recognise a redelivery (DUP). */
  mqtt: z.object({
    client_id: z.string(),
    message_id: z.number().int().optional(),
    payload_sha256: z.string()
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
