import type { Metadata } from '../../events/index.ts'
import type { HomeAssistantCommand } from '../../events/home-assistant.ts'
import type { Clock } from '../clock.ts'
import type { HomeAssistantDeclaration } from '../home-assistant/declaration.ts'
import { commandedOpen } from './decider.ts'
import type { ZoneQueries, ZoneRow } from './projections.ts'
import type { ZoneControl } from './zone-control.ts'

const MODES = ['wait_mode', 'timer_mode', 'manual_mode']

/** Home Assistant's valve states from what the service commanded and what the valve last reported (a valve that never reported is closed). */
export function valveState ({ state }: ZoneRow): 'open' | 'closed' | 'opening' | 'closing' {
  const open = state.reported_open === true
  if (commandedOpen(state.mode)) return open ? 'open' : 'opening'
  return open ? 'closing' : 'closed'
}

export interface ZoneHomeAssistantOptions {
  zones: ZoneQueries
  control: ZoneControl
  clock: Clock
}

/** A zone in Home Assistant: a water valve without position (OPEN is manual mode, CLOSE stops), and its mode. */
export function zoneHomeAssistant ({ zones, control, clock }: ZoneHomeAssistantOptions): HomeAssistantDeclaration {
  return {
    kind: 'zone',
    model: 'Irrigation zone',
    configTypes: ['ZoneRegistered'],
    stateTypes: ['ManualModeStarted', 'TimerModeStarted', 'ZoneRunEnded', 'ValveStateReported', 'ValveMismatchDetected'],
    components: () => ({
      valve: {
        platform: 'valve',
        name: 'Valve',
        commands: true,
        options: { device_class: 'water', reports_position: false, payload_open: 'OPEN', payload_close: 'CLOSE' }
      },
      mode: { platform: 'sensor', name: 'Mode', options: { device_class: 'enum', options: MODES } }
    }),
    state (zoneId) {
      const zone = zones.zone(zoneId)
      return { valve: zone === undefined ? null : valveState(zone), mode: zone?.state.mode ?? null }
    },
    commands: ['OPEN', 'CLOSE'],
    // The same commands as POST /api/v1/zones/<zone>/manual and .../stop, through the same decider.
    async command (zoneId: string, command: HomeAssistantCommand, metadata: Metadata) {
      await control.decide(zoneId, command === 'OPEN' ? { type: 'StartManual', at: clock.now() } : { type: 'Stop', at: clock.now() }, metadata)
    }
  }
}
