import type { EventOf } from '../../events/index.ts'
import type { Mode } from '../../events/irrigation.ts'
import { NetworkNotFound, ZoneNotFound } from '../errors.ts'

// An irrigation zone's rules, exactly the reference's: manual ends whatever runs, a timer is
// ignored while manual or another timer runs, stop returns to wait, a timer that runs out
// returns to wait. Pure: the caller brings the state, the time and the outside facts.

export type ZoneCommand =
  | { type: 'RegisterZone', zone_identifier: string, zone_name: string, network_identifier: string, timer_seconds: number, mqtt_password_sha256: string }
  | { type: 'StartManual', at: number }
  | { type: 'StartTimer', at: number, duration_seconds: number | null }
  | { type: 'Stop', at: number }
  /** The timer timer fired: `due_at` is the end of the timer it was set for. */
  | { type: 'CompleteTimer', due_at: number }
  | { type: 'ReportValve', open: boolean }
  /** 5 s after the mode change at `changed_at`: does the valve agree yet? */
  | { type: 'CheckValve', changed_at: number }

export type ZoneEvent = EventOf<'ZoneRegistered' | 'ManualModeStarted' | 'TimerModeStarted' | 'ZoneRunEnded' |
  'ZoneCommandIgnored' | 'ValveStateReported' | 'ValveMismatchDetected'>

export type ZoneState =
  | { status: 'unregistered' }
  | {
    status: 'registered'
    zone_identifier: string
    timer_seconds: number
    mode: Mode
    /** Milliseconds; null in wait. */
    since: number | null
    /** The end of a timer; null otherwise. */
    to: number | null
    /** When the mode (and so the commanded valve state) last changed; null before the first change. */
    changed_at: number | null
    reported_open: boolean | null
    valve_mismatch: boolean
  }

type Registered = Extract<ZoneState, { status: 'registered' }>

export interface ZoneContext { networkAllowed: boolean }

export const initialZoneState = (): ZoneState => ({ status: 'unregistered' })

/** The valve is open in timer and manual mode. */
export const commandedOpen = (mode: Mode): boolean => mode !== 'wait_mode'

const iso = (ms: number) => new Date(ms).toISOString()

export function decideZone (command: ZoneCommand, state: ZoneState, context: ZoneContext = { networkAllowed: true }): ZoneEvent[] {
  if (command.type === 'RegisterZone') {
    if (!context.networkAllowed) throw new NetworkNotFound()
    const { type: _, ...data } = command
    return [{ type: 'ZoneRegistered', data }]
  }
  if (state.status !== 'registered') throw new ZoneNotFound()
  const zone_identifier = state.zone_identifier
  const ignored = (what: 'manual' | 'timer' | 'stop', reason: EventOf<'ZoneCommandIgnored'>['data']['reason']): ZoneEvent[] =>
    [{ type: 'ZoneCommandIgnored', data: { zone_identifier, command: what, reason } }]
  /** Ends the run in progress, if any: one history entry. */
  const end = (at: number, reason: 'stopped' | 'manual_started' | 'completed'): ZoneEvent[] => state.mode === 'wait_mode' || state.since === null
    ? []
    : [{ type: 'ZoneRunEnded', data: { zone_identifier, mode: state.mode, since: iso(state.since), to: reason === 'completed' ? iso(at) : null, ended_at: iso(at), reason } }]

  // A timer past its end whose completion is not recorded yet (its timer is queued behind this
  // command, or the service just started) has run out: record that first, then decide.
  if ((command.type === 'StartManual' || command.type === 'StartTimer' || command.type === 'Stop') &&
    state.mode === 'timer_mode' && state.to !== null && state.to <= command.at) {
    const completed = end(state.to, 'completed')
    return [...completed, ...decideZone(command, completed.reduce(evolveZone, state as ZoneState), context)]
  }

  switch (command.type) {
    case 'StartManual':
      if (state.mode === 'manual_mode') return ignored('manual', 'manual_running')
      return [...end(command.at, 'manual_started'), { type: 'ManualModeStarted', data: { zone_identifier, since: iso(command.at) } }]
    case 'StartTimer': {
      if (state.mode === 'manual_mode') return ignored('timer', 'manual_running')
      if (state.mode === 'timer_mode') return ignored('timer', 'timer_running')
      const duration = command.duration_seconds ?? state.timer_seconds
      return [{ type: 'TimerModeStarted', data: { zone_identifier, since: iso(command.at), to: iso(command.at + duration * 1000), duration_seconds: duration } }]
    }
    case 'Stop':
      if (state.mode === 'wait_mode') return ignored('stop', 'already_waiting')
      return end(command.at, 'stopped')
    case 'CompleteTimer':
      // A stale timer (stopped, replaced, restarted since) finds another state and does nothing.
      if (state.mode !== 'timer_mode' || state.to !== command.due_at) return []
      return end(command.due_at, 'completed')
    case 'ReportValve':
      return [{ type: 'ValveStateReported', data: { zone_identifier, open: command.open } }]
    case 'CheckValve': {
      const open = commandedOpen(state.mode)
      if (state.changed_at !== command.changed_at || state.valve_mismatch || state.reported_open === open) return []
      return [{ type: 'ValveMismatchDetected', data: { zone_identifier, commanded_open: open, reported_open: state.reported_open } }]
    }
    default: {
      const unreachable: never = command
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}

export function evolveZone (state: ZoneState, event: ZoneEvent): ZoneState {
  if (event.type === 'ZoneRegistered') {
    return {
      status: 'registered',
      zone_identifier: event.data.zone_identifier,
      timer_seconds: event.data.timer_seconds,
      mode: 'wait_mode',
      since: null,
      to: null,
      changed_at: null,
      reported_open: null,
      valve_mismatch: false
    }
  }
  if (state.status !== 'registered') return state
  const change = (mode: Mode, since: string | null, to: string | null, at: string): Registered =>
    // A mismatch shows until the valve agrees: with the new command too, if it still differs.
    ({
      ...state,
      mode,
      since: since === null ? null : Date.parse(since),
      to: to === null ? null : Date.parse(to),
      changed_at: Date.parse(at),
      valve_mismatch: state.valve_mismatch && state.reported_open !== commandedOpen(mode)
    })
  switch (event.type) {
    case 'ManualModeStarted':
      return change('manual_mode', event.data.since, null, event.data.since)
    case 'TimerModeStarted':
      return change('timer_mode', event.data.since, event.data.to, event.data.since)
    case 'ZoneRunEnded':
      // When manual replaces a run, ManualModeStarted follows in the same decision.
      return change('wait_mode', null, null, event.data.ended_at)
    case 'ValveStateReported':
      return { ...state, reported_open: event.data.open, valve_mismatch: state.valve_mismatch && event.data.open !== commandedOpen(state.mode) }
    case 'ValveMismatchDetected':
      return { ...state, valve_mismatch: true }
    case 'ZoneCommandIgnored':
      return state
    default: {
      const unreachable: never = event
      return unreachable
    }
  }
}
