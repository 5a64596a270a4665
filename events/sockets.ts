import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `socket-<socket id>`. A smart socket is a Tasmota plug; everything the service asks
// of it, everything it reports, and every instance that shares it is recorded here.

/** ISO 8601 (UTC) instants, as the reference's JSON dates. */
const Instant = z.iso.datetime()
export const Power = z.enum(['ON', 'OFF'])
export type Power = z.infer<typeof Power>

/** Tasmota's ENERGY object, the fields we use; kept with Tasmota's names, as the reference did. */
export const EnergyReading = z.object({
  Total: z.number().optional(),
  Today: z.number().optional(),
  Power: z.number().optional(),
  ApparentPower: z.number().optional(),
  ReactivePower: z.number().optional(),
  Factor: z.number().optional(),
  Voltage: z.number().optional(),
  Current: z.number().optional()
})
export type EnergyReading = z.infer<typeof EnergyReading>

/** Default Tasmota FullTopic: `cmnd/<topic>/POWER`, `stat/<topic>/POWER`, `tele/<topic>/SENSOR`. */
export const DEFAULT_FULL_TOPIC = '%prefix%/%topic%/'

export const SocketRegistered = defineEvent('SocketRegistered', 1, z.object({
  socket_identifier: z.uuid(),
  socket_name: z.string(),
  /** Tasmota's Topic, unique across the broker. */
  topic: z.string(),
  full_topic: z.string(),
  network_identifier: z.uuid(),
  mqtt_password_sha256: z.string()
}))

/** A message the service published to the plug, or the plug to its own command topic. */
export const SocketCommanded = defineEvent('SocketCommanded', 1, z.object({
  socket_identifier: z.uuid(),
  /** `POWER`, `STATUS`, ...: the last level of `cmnd/<topic>/<command>`. */
  command: z.string(),
  payload: z.string(),
  by: z.enum(['service', 'device']),
  /** The instance whose start or stop switched the plug, if any. */
  instance_identifier: z.string().nullable()
}))

/**
 * The plug's power state, from `stat/<topic>/POWER`, `RESULT` or `STATUS`. `outcome` is the
 * decider's reading of it: the answer to a pending command (confirmed or contradicted), a press
 * of the plug's own button, or nothing new (Tasmota reports each change on RESULT and POWER).
 */
export const PowerReported = defineEvent('PowerReported', 1, z.object({
  socket_identifier: z.uuid(),
  power: Power,
  source: z.string(),
  outcome: z.enum(['confirmed', 'contradicted', 'pressed', 'unchanged']),
  /** The instance whose command this answers (confirmed or contradicted). */
  instance_identifier: z.string().nullable()
}))

/**
 * The service sent the plug its desired power again: the last POWER it decided (or the last press
 * it accepted) is not confirmed by the plug's own report. `reconnected`: the plug connected again
 * (a command published while it was away is lost); `unconfirmed`: still no agreeing report after
 * SOCKET_RESEND_SECONDS while connected; `contradicted`: the plug reported otherwise, not as a
 * press (it was not in agreement before), so it is switched back.
 */
export const PowerResent = defineEvent('PowerResent', 1, z.object({
  socket_identifier: z.uuid(),
  power: Power,
  reason: z.enum(['reconnected', 'unconfirmed', 'contradicted']),
  /** The instance whose start or stop decided this power, if any. */
  instance_identifier: z.string().nullable()
}))

/** A POWER command got no report within SOCKET_REPLY_TIMEOUT_MS. */
export const PowerCommandUnanswered = defineEvent('PowerCommandUnanswered', 1, z.object({
  socket_identifier: z.uuid(),
  power: Power,
  instance_identifier: z.string().nullable()
}))

export const EnergyReported = defineEvent('EnergyReported', 1, z.object({
  socket_identifier: z.uuid(),
  /** `STATUS10`, `STATUS8`, `STATUS0`, `SENSOR` or `discovery`. */
  source: z.string(),
  energy: EnergyReading
}))

/** Status.DeviceName, from the general status the service asks for when the plug connects. */
export const SocketStatusReported = defineEvent('SocketStatusReported', 1, z.object({
  socket_identifier: z.uuid(),
  device_name: z.string().nullable()
}))

/** What the plug says about itself (INFO1-3, discovery, STATUS 0): each field when known. */
export const SocketInfoReported = defineEvent('SocketInfoReported', 1, z.object({
  socket_identifier: z.uuid(),
  source: z.string(),
  firmware_version: z.string().optional(),
  module: z.string().optional(),
  hostname: z.string().optional(),
  ip_address: z.string().optional(),
  mac: z.string().optional(),
  restart_reason: z.string().optional()
}))

/** `tele/<topic>/LWT`: Online when it connects, Offline (its last will) when it is lost. */
export const SocketAvailabilityReported = defineEvent('SocketAvailabilityReported', 1, z.object({
  socket_identifier: z.uuid(),
  online: z.boolean()
}))

/** Any other message the plug may send (tele STATE, RESULT of other commands, ...), kept as sent. */
export const SocketMessageReceived = defineEvent('SocketMessageReceived', 1, z.object({
  socket_identifier: z.uuid(),
  topic: z.string(),
  payload: z.string()
}))

export const InstanceStarted = defineEvent('InstanceStarted', 1, z.object({
  socket_identifier: z.uuid(),
  instance_identifier: z.string(),
  /** ms after which the instance is stopped if nobody stopped it (the reference's `timeout`). */
  timeout_ms: z.number().positive().nullable(),
  /** start-wait-stop: seconds after which the instance stops. */
  duration_seconds: z.number().positive().nullable(),
  /** When the service stops it by itself: the earlier of timeout and duration. */
  stop_due_at: Instant.nullable(),
  started_at: Instant,
  /** URLs of the request's `*-callback` headers, told with PUT when the instance stops. */
  callbacks: z.array(z.string())
}))

/** New instances are refused while the socket is emergency-stopped (HTTP 409). */
export const InstanceStartRefused = defineEvent('InstanceStartRefused', 1, z.object({
  socket_identifier: z.uuid(),
  reason: z.enum(['emergency_stopped'])
}))

/** The plug did not switch on for the instance: it answered OFF, or nothing in time. */
export const InstanceStartFailed = defineEvent('InstanceStartFailed', 1, z.object({
  socket_identifier: z.uuid(),
  instance_identifier: z.string(),
  reason: z.enum(['plug_answered_off', 'no_answer'])
}))

export const StopReason = z.enum(['requested', 'duration', 'timeout', 'emergency', 'pressed'])
export const InstanceStopped = defineEvent('InstanceStopped', 1, z.object({
  socket_identifier: z.uuid(),
  instance_identifier: z.string(),
  reason: StopReason,
  stopped_at: Instant
}))

export const InstanceDeleted = defineEvent('InstanceDeleted', 1, z.object({
  socket_identifier: z.uuid(),
  instance_identifier: z.string()
}))

export const EmergencyStopped = defineEvent('EmergencyStopped', 1, z.object({
  socket_identifier: z.uuid(),
  stopped_instances: z.array(z.string())
}))

export const EmergencyRecovered = defineEvent('EmergencyRecovered', 1, z.object({
  socket_identifier: z.uuid()
}))

/** `GET /api/wait`: nothing but a timer, with callbacks when it ends. */
export const WaitStarted = defineEvent('WaitStarted', 1, z.object({
  socket_identifier: z.uuid(),
  wait_identifier: z.string(),
  duration_seconds: z.number().positive(),
  due_at: Instant,
  callbacks: z.array(z.string())
}))

export const WaitEnded = defineEvent('WaitEnded', 1, z.object({
  socket_identifier: z.uuid(),
  wait_identifier: z.string()
}))

/** One PUT to a callback URL, and when the next try is due if it failed. */
export const CallbackAttempted = defineEvent('CallbackAttempted', 1, z.object({
  socket_identifier: z.uuid(),
  subject: z.enum(['instance', 'wait']),
  subject_identifier: z.string(),
  url: z.string(),
  attempt: z.number().int().positive(),
  delivered: z.boolean(),
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  next_attempt_at: Instant.nullable()
}))
