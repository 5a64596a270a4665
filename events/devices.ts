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
  'rate_exceeded',
  /** A connection from an address that failed authentication too often, closed at the socket. */
  'source_blocked'
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
  // node_lost: several nodes on one log, the node the device was connected to stopped renewing its lease.
  reason: z.enum(['closed', 'keepalive_timeout', 'too_many_refusals', 'service_stopped', 'node_lost']),
  detail: z.string()
}))

/**
 * Refusals counted instead of recorded one by one, one summary per window: those identical to one
 * recorded in full (same source, username, reason, topic, detail and payload; a connection's
 * password aside), and a device's (or an
 * address's) refusals past the distinct ones a window records in full. So a flood adds a bounded
 * number of events. `source` is the client id (messages, subscriptions) or the address (connections).
 */
export const RefusalsSummarized = defineEvent('RefusalsSummarized', 1, z.object({
  refusal: z.enum(['MessageRejected', 'SubscriptionRefused', 'ConnectionRefused']),
  source: z.string(),
  username: z.string().nullable(),
  reason: RejectionReason,
  /** The detail they share; null when they are a device's refusals past its budget, which vary. */
  detail: z.string().nullable(),
  /** How many were counted in this window, not recorded one by one. */
  count: z.number().int().positive(),
  /** The first few distinct topics they were for (messages, subscriptions); empty for connections. */
  topics: z.array(z.string()).max(10),
  first_at: z.iso.datetime(),
  last_at: z.iso.datetime()
}))

/** An address failed authentication too often: its connections are closed at the socket until `until`. */
export const SourceBlocked = defineEvent('SourceBlocked', 1, z.object({
  address: z.string(),
  failures: z.number().int().positive(),
  until: z.iso.datetime(),
  detail: z.string()
}))
