import type { DeviceStateDeclaration } from '../devices/state-as-of.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveZone, initialZoneState, type ZoneEvent, type ZoneState } from './decider.ts'
import { stateOf } from './views.ts'

/** A zone as of a moment: the decider's state (the live projection's evolve), as the live API shows it. */
export const zoneState: DeviceStateDeclaration<{ decider: ZoneState, name: string | null }> = {
  kind: 'zone',
  folds: ['ZoneRegistered', 'ManualModeStarted', 'TimerModeStarted', 'ZoneRunEnded', 'ValveStateReported', 'ValveMismatchDetected'],
  latest: [],
  initial: () => ({ decider: initialZoneState(), name: null }),
  evolve: (fold, event: RecordedEvent) => ({
    decider: evolveZone(fold.decider, event as ZoneEvent),
    name: event.type === 'ZoneRegistered' ? event.data.zone_name : fold.name
  }),
  view ({ decider, name }) {
    if (decider.status !== 'registered') return null
    return { name, timer_seconds: decider.timer_seconds, ...stateOf(decider), valve_open: decider.reported_open, valve_mismatch: decider.valve_mismatch }
  }
}
