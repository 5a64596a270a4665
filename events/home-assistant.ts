import { z } from 'zod'
import { defineEvent } from './define.ts'

// Stream: `homeassistant-<account id>`. A Home Assistant connected to the embedded broker with
// an account of its own, for one network: its credentials, its birth and will messages, and the
// commands it sent (each command's effects are recorded on the device's own stream, with the
// account as their actor).

/** The device kinds Home Assistant may command, and what it may ask of them. */
export const HomeAssistantCommand = z.enum(['ON', 'OFF', 'OPEN', 'CLOSE'])
export type HomeAssistantCommand = z.infer<typeof HomeAssistantCommand>

/** `POST /api/v1/integrations/home-assistant`: MQTT credentials for one network's Home Assistant (the password shown once). */
export const HomeAssistantAccountCreated = defineEvent('HomeAssistantAccountCreated', 1, z.object({
  account_identifier: z.uuid(),
  network_identifier: z.uuid(),
  username: z.string(),
  mqtt_password_sha256: z.string()
}))

/** Home Assistant's birth (`online`) or last will (`offline`) on `<discovery prefix>/status`. */
export const HomeAssistantStatusReported = defineEvent('HomeAssistantStatusReported', 1, z.object({
  account_identifier: z.uuid(),
  status: z.enum(['online', 'offline'])
}))

/** A command on `devicelog/ha/<kind>/<id>/set`, accepted: it is then decided by the device's own decider. */
export const HomeAssistantCommandReceived = defineEvent('HomeAssistantCommandReceived', 1, z.object({
  account_identifier: z.uuid(),
  device_kind: z.string(),
  device_identifier: z.string(),
  command: HomeAssistantCommand
}))

/**
 * With HA_TASMOTA=native: a message Home Assistant's Tasmota integration sent to one of its
 * network's plugs (`cmnd/<topic>/...`), delivered to the plug as it was.
 */
export const HomeAssistantMessageRelayed = defineEvent('HomeAssistantMessageRelayed', 1, z.object({
  account_identifier: z.uuid(),
  device_identifier: z.string(),
  topic: z.string(),
  payload: z.string().max(1024)
}))
