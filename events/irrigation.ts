import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `zone-<zone id>`. An irrigation zone is one valve and its controller: the modes people
// and programs put it in, the valve state its controller reports, and what the service noticed.

/** ISO 8601 (UTC) instants. The HTTP and WebSocket views show them as local time, as the reference. */
const Instant = z.iso.datetime()
export const Mode = z.enum(['wait_mode', 'timer_mode', 'manual_mode'])
export type Mode = z.infer<typeof Mode>

export const ZoneRegistered = defineEvent('ZoneRegistered', 1, z.object({
  zone_identifier: z.uuid(),
  zone_name: z.string(),
  network_identifier: z.uuid(),
  timer_seconds: z.number().positive(),
  mqtt_password_sha256: z.string()
}))

/** Manual mode: the valve is open until someone stops it. */
export const ManualModeStarted = defineEvent('ManualModeStarted', 1, z.object({
  zone_identifier: z.uuid(),
  since: Instant
}))

/** Timer mode: the valve is open from `since` until `to`. */
export const TimerModeStarted = defineEvent('TimerModeStarted', 1, z.object({
  zone_identifier: z.uuid(),
  since: Instant,
  to: Instant,
  duration_seconds: z.number().positive()
}))

/**
 * A timer or manual run ended: the zone returns to wait (or goes on in manual). One history
 * entry each. A completed timer ends at its due time, even when the service was down then.
 */
export const ZoneRunEnded = defineEvent('ZoneRunEnded', 1, z.object({
  zone_identifier: z.uuid(),
  mode: z.enum(['timer_mode', 'manual_mode']),
  since: Instant,
  /** The planned end of a completed timer; null for a run someone ended. */
  to: Instant.nullable(),
  ended_at: Instant,
  reason: z.enum(['completed', 'stopped', 'manual_started'])
}))

/** A mode command the rules refused: a timer while manual runs or another timer runs, and so on. */
export const ZoneCommandIgnored = defineEvent('ZoneCommandIgnored', 1, z.object({
  zone_identifier: z.uuid(),
  command: z.enum(['manual', 'timer', 'stop']),
  reason: z.enum(['manual_running', 'timer_running', 'already_waiting'])
}))

/** What the valve controller says, from `zones/<zone>/state`. */
export const ValveStateReported = defineEvent('ValveStateReported', 1, z.object({
  zone_identifier: z.uuid(),
  open: z.boolean()
}))

/** 5 s after a mode change, the controller still reported otherwise than commanded (or nothing). */
export const ValveMismatchDetected = defineEvent('ValveMismatchDetected', 1, z.object({
  zone_identifier: z.uuid(),
  commanded_open: z.boolean(),
  reported_open: z.boolean().nullable()
}))

/** What the service publishes, QoS 1 retained, to `zones/<zone>/valve`. */
export const ValveCommandMessage = z.object({
  open: z.boolean(),
  mode: Mode,
  since: z.string().nullable(),
  to: z.string().nullable()
})

/** What a controller publishes to `zones/<zone>/state`. */
export const ValveStateMessage = z.object({ open: z.boolean() })
export type ValveCommandMessage = z.infer<typeof ValveCommandMessage>
