import { z } from 'zod'
import { Mode, type ValveCommandMessage } from '../../events/irrigation.ts'
import type { Presence } from '../devices/projections.ts'
import { commandedOpen, type ZoneState } from './decider.ts'
import type { HistoryRow, ZoneRow } from './projections.ts'

type Registered = Extract<ZoneState, { status: 'registered' }>

const pad = (n: number, width = 2) => String(n).padStart(width, '0')

/**
 * Local time, ISO 8601 without a zone, as the reference sends it (`datetime.now().isoformat()`):
 * the site's own clock is all a console on a disconnected network has to go by.
 */
export function localIso (time: number | string): string {
  const d = new Date(time)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}
const localOrNull = (time: number | string | null) => time === null ? null : localIso(time)

const LocalTime = z.string()
export const ZoneStateMessage = z.object({ mode: Mode, since: LocalTime.nullable(), to: LocalTime.nullable() })
export const HistoryEntry = z.object({ mode: Mode, timestamp: LocalTime, since: LocalTime, to: LocalTime.nullable() })
export const Zone = z.object({
  zone_identifier: z.string(),
  name: z.string(),
  network_identifier: z.string(),
  timer_seconds: z.number(),
  ...ZoneStateMessage.shape,
  /** What the controller last reported; null until it reports. */
  valve_open: z.boolean().nullable(),
  /** The controller still reports otherwise than commanded, 5 s or more after a mode change. */
  valve_mismatch: z.boolean(),
  online: z.boolean()
})

export const stateOf = (state: Registered): z.infer<typeof ZoneStateMessage> =>
  ({ mode: state.mode, since: localOrNull(state.since), to: localOrNull(state.to) })

export const valveMessage = (state: Registered): ValveCommandMessage =>
  ({ open: commandedOpen(state.mode), ...stateOf(state) })

export const zoneView = (zone: ZoneRow, presence: Presence): z.infer<typeof Zone> => ({
  zone_identifier: zone.zone_id,
  name: zone.zone_name,
  network_identifier: zone.network_id,
  timer_seconds: zone.state.timer_seconds,
  ...stateOf(zone.state),
  valve_open: zone.state.reported_open,
  valve_mismatch: zone.state.valve_mismatch,
  online: presence.online
})

export const historyView = (row: HistoryRow): z.infer<typeof HistoryEntry> =>
  ({ mode: row.mode as Mode, timestamp: localIso(row.timestamp), since: localIso(row.since), to: localOrNull(row.to) })
