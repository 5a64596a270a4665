import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `charger-<charger id>`. A wallbox charger and the widget paired with it: the charger
// reports its state of charge, the widget shows the charging status that follows from it.

/** Free strings such as `c1234` and `wABCD`, as the reference's ids. */
export const PairId = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)')
export const ChargingStatus = z.enum(['charging', 'charging80', 'charged'])
export type ChargingStatus = z.infer<typeof ChargingStatus>

export const ChargerRegistered = defineEvent('ChargerRegistered', 1, z.object({
  charger_id: PairId,
  widget_id: PairId,
  network_identifier: z.uuid(),
  /** The pair's WebSocket token (charger and widget), and the charger's MQTT password. */
  token_sha256: z.string(),
  mqtt_password_sha256: z.string()
}))

export const ChargerRemoved = defineEvent('ChargerRemoved', 1, z.object({
  charger_id: PairId,
  widget_id: PairId
}))

export const StateOfChargeReported = defineEvent('StateOfChargeReported', 1, z.object({
  charger_id: PairId,
  soc: z.number().min(0).max(100),
  via: z.enum(['websocket', 'mqtt'])
}))

/** The widget's light changed: pushed to it as `chargingStatus`. */
export const ChargingStatusChanged = defineEvent('ChargingStatusChanged', 1, z.object({
  charger_id: PairId,
  widget_id: PairId,
  status: ChargingStatus
}))

/** What a charger sends over its WebSocket (the reference's message). */
export const ChargerSocketMessage = z.object({
  event: z.literal('StateOfCharge'),
  data: z.object({ soc: z.number().min(0).max(100) })
})
/** What a charger publishes to `chargers/<id>/state-of-charge`. */
export const StateOfChargeMessage = z.object({ soc: z.number().min(0).max(100) })
