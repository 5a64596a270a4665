import { z } from 'zod'
import { defineEvent } from './define.ts'

// Facts about any device's MQTT traffic, recorded on the device's own stream, or on the
// `broker` stream when no device can be named (an unknown username at CONNECT).

export const RejectionReason = z.enum([
  'invalid_json',
  'invalid_payload',
  'unknown_topic',
  'foreign_topic',
  'unknown_sensor',
  'oversize',
  'reserved_topic',
  'bad_credentials',
  /** A charger reporting faster than CHARGER_MAX_RATE. */
  'rate_exceeded'
])
export type RejectionReason = z.infer<typeof RejectionReason>

export const MessageRejected = defineEvent('MessageRejected', 1, z.object({
  topic: z.string(),
  client_id: z.string(),
  username: z.string().nullable(),
  reason: RejectionReason,
  detail: z.string(),
  /** The first KiB of the payload, as UTF-8 (invalid bytes replaced). */
  payload_excerpt: z.string(),
  payload_bytes: z.number().int().nonnegative()
}))

export const SubscriptionRefused = defineEvent('SubscriptionRefused', 1, z.object({
  topic: z.string(),
  client_id: z.string(),
  username: z.string().nullable(),
  reason: RejectionReason,
  detail: z.string()
}))

export const ConnectionRefused = defineEvent('ConnectionRefused', 1, z.object({
  client_id: z.string(),
  username: z.string().nullable(),
  reason: RejectionReason,
  detail: z.string()
}))

/** A device's MQTT connection was accepted (CONNACK 0), or a charger's WebSocket (`client_id` `ws:<uuid>`). */
export const DeviceConnected = defineEvent('DeviceConnected', 1, z.object({
  client_id: z.string()
}))

/**
 * A device's connection ended: it disconnected or was lost (`closed`; `detail` says which, and
 * whether its last will was published), it went silent past its keep-alive (`keepalive_timeout`),
 * the service cut it off for refusing too much (`too_many_refusals`, recorded once), or the
 * service stopped with it connected (`service_stopped`, recorded at the next start when the stop
 * was not graceful). New reasons only widen the enum: older events still read.
 */
export const DeviceDisconnected = defineEvent('DeviceDisconnected', 1, z.object({
  client_id: z.string(),
  reason: z.enum(['closed', 'keepalive_timeout', 'too_many_refusals', 'service_stopped']),
  detail: z.string()
}))
