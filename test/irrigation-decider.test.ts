import t, { type Test } from 'tap'
import {
  decideZone, evolveZone, initialZoneState,
  type ZoneCommand, type ZoneContext, type ZoneEvent, type ZoneState
} from '../src/irrigation/decider.ts'
import { NetworkNotFound, ZoneNotFound } from '../src/errors.ts'
import { deciderSpec } from './helpers/decider-spec.ts'

// An irrigation zone's rules (the reference's manual, timer and stop, the timer running out, and
// the valve that must follow), given/when/then on the decider.

type Assert = Pick<Test, 'same' | 'throws'>
const spec = (t: Assert, context: Partial<ZoneContext> = {}) =>
  deciderSpec({
    decide: (c: ZoneCommand, s: ZoneState) => decideZone(c, s, { networkAllowed: true, ...context }),
    evolve: evolveZone,
    initialState: initialZoneState
  })(t)

const zone_identifier = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b'
const network_identifier = '0a71a8d8-40c6-4086-a64e-58e38350cb53'
const at = Date.UTC(2026, 0, 1, 8)
const iso = (ms: number) => new Date(ms).toISOString()

const registration = { zone_identifier, zone_name: 'lawn', network_identifier, timer_seconds: 10, mqtt_password_sha256: 'x' }
const registered: ZoneEvent = { type: 'ZoneRegistered', data: registration }
const manualStarted = (when = at): ZoneEvent => ({ type: 'ManualModeStarted', data: { zone_identifier, since: iso(when) } })
const timerStarted = (when = at, seconds = 10): ZoneEvent =>
  ({ type: 'TimerModeStarted', data: { zone_identifier, since: iso(when), to: iso(when + seconds * 1000), duration_seconds: seconds } })
const ended = (mode: 'timer_mode' | 'manual_mode', since: number, endedAt: number, reason: 'completed' | 'stopped' | 'manual_started', to: number | null = null): ZoneEvent =>
  ({ type: 'ZoneRunEnded', data: { zone_identifier, mode, since: iso(since), to: to === null ? null : iso(to), ended_at: iso(endedAt), reason } })
const ignored = (command: 'manual' | 'timer' | 'stop', reason: 'manual_running' | 'timer_running' | 'already_waiting'): ZoneEvent =>
  ({ type: 'ZoneCommandIgnored', data: { zone_identifier, command, reason } })
const reported = (open: boolean): ZoneEvent => ({ type: 'ValveStateReported', data: { zone_identifier, open } })
const mismatch = (commanded: boolean, reportedOpen: boolean | null): ZoneEvent =>
  ({ type: 'ValveMismatchDetected', data: { zone_identifier, commanded_open: commanded, reported_open: reportedOpen } })

const manual = (when = at): ZoneCommand => ({ type: 'StartManual', at: when })
const timer = (when = at, duration: number | null = null): ZoneCommand => ({ type: 'StartTimer', at: when, duration_seconds: duration })
const stop = (when = at): ZoneCommand => ({ type: 'Stop', at: when })
const complete = (due: number): ZoneCommand => ({ type: 'CompleteTimer', due_at: due })
const check = (changedAt: number): ZoneCommand => ({ type: 'CheckValve', changed_at: changedAt })

/** Histories, as the log holds them. */
const inTimer = [registered, timerStarted()]
const inManual = [registered, manualStarted()]

/** The HTTP status of what `fn` throws (undefined if it does not throw). */
function statusOf (fn: () => unknown): number | undefined {
  try { fn() } catch (error) { return (error as { statusCode?: number }).statusCode }
  return undefined
}

const fold = (events: ZoneEvent[]): ZoneState => events.reduce(evolveZone, initialZoneState())
const registeredState = (events: ZoneEvent[]) => {
  const state = fold(events)
  if (state.status !== 'registered') throw new Error('not registered')
  return state
}

t.test('registration', async t => {
  t.test('records the zone, in wait', async t => {
    spec(t).given([]).when({ type: 'RegisterZone', ...registration }).then([registered])
    t.match(fold([registered]), { status: 'registered', mode: 'wait_mode', since: null, to: null, timer_seconds: 10, changed_at: null, reported_open: null, valve_mismatch: false })
  })
  t.test('refuses a network the user is not a member of, as a 404', async t => {
    spec(t, { networkAllowed: false }).given([]).when({ type: 'RegisterZone', ...registration }).thenThrows(NetworkNotFound)
    t.equal(statusOf(() => decideZone({ type: 'RegisterZone', ...registration }, initialZoneState(), { networkAllowed: false })), 404)
  })
})

t.test('every other command needs a registered zone: ZoneNotFound, a 404', async t => {
  const commands: ZoneCommand[] = [manual(), timer(), stop(), complete(at), { type: 'ReportValve', open: true }, check(at)]
  for (const command of commands) {
    spec(t).given([]).when(command).thenThrows(ZoneNotFound)
    t.throws(() => decideZone(command, initialZoneState()), { code: 'DL_ZONE_NOT_FOUND' }, command.type)
    t.equal(statusOf(() => decideZone(command, initialZoneState())), 404, `${command.type}: a 404`)
  }
  // events of a stream whose registration is missing do not make a zone
  t.strictSame(fold([manualStarted(), timerStarted()]), { status: 'unregistered' })
})

t.test('manual', async t => {
  t.test('from wait starts manual', async t => {
    spec(t).given([registered]).when(manual(at + 1_000)).then([manualStarted(at + 1_000)])
    t.match(registeredState([registered, manualStarted(at + 1_000)]), { mode: 'manual_mode', since: at + 1_000, to: null, changed_at: at + 1_000 })
  })
  t.test('while a timer runs ends the timer (manual_started, no `to`) and starts manual', async t => {
    spec(t).given(inTimer).when(manual(at + 3_000))
      .then([ended('timer_mode', at, at + 3_000, 'manual_started'), manualStarted(at + 3_000)])
    const state = registeredState([...inTimer, ended('timer_mode', at, at + 3_000, 'manual_started'), manualStarted(at + 3_000)])
    t.match(state, { mode: 'manual_mode', since: at + 3_000, to: null })
  })
  t.test('after a completed or stopped run starts manual', async t => {
    spec(t).given([...inTimer, ended('timer_mode', at, at + 10_000, 'completed', at + 10_000)]).when(manual(at + 20_000)).then([manualStarted(at + 20_000)])
    spec(t).given([...inManual, ended('manual_mode', at, at + 5_000, 'stopped')]).when(manual(at + 6_000)).then([manualStarted(at + 6_000)])
  })
  t.test('while manual runs is ignored: nothing changes', async t => {
    spec(t).given(inManual).when(manual(at + 5_000)).then([ignored('manual', 'manual_running')])
    const state = registeredState([...inManual, ignored('manual', 'manual_running')])
    t.strictSame(state, registeredState(inManual), 'an ignored command leaves the state as it was')
  })
})

t.test('timer', async t => {
  t.test('from wait starts a timer of the zone\'s timer_seconds', async t => {
    spec(t).given([registered]).when(timer(at)).then([timerStarted(at, 10)])
    const thirty: ZoneEvent = { type: 'ZoneRegistered', data: { ...registration, timer_seconds: 30 } }
    spec(t).given([thirty]).when(timer(at)).then([timerStarted(at, 30)])
    t.match(registeredState([registered, timerStarted(at, 10)]), { mode: 'timer_mode', since: at, to: at + 10_000, changed_at: at })
  })
  t.test('an explicit duration wins over timer_seconds', async t => {
    spec(t).given([registered]).when(timer(at, 30)).then([timerStarted(at, 30)])
    spec(t).given([registered]).when(timer(at, 0.5)).then([timerStarted(at, 0.5)])
  })
  t.test('is ignored while manual runs', async t => {
    spec(t).given(inManual).when(timer(at + 1_000)).then([ignored('timer', 'manual_running')])
    spec(t).given(inManual).when(timer(at + 1_000, 30)).then([ignored('timer', 'manual_running')])
  })
  t.test('is not restarted while a timer runs', async t => {
    spec(t).given(inTimer).when(timer(at + 1_000)).then([ignored('timer', 'timer_running')])
    spec(t).given(inTimer).when(timer(at + 1_000, 60)).then([ignored('timer', 'timer_running')])
  })
  t.test('starts again once the last one ended', async t => {
    spec(t).given([...inTimer, ended('timer_mode', at, at + 10_000, 'completed', at + 10_000)]).when(timer(at + 11_000)).then([timerStarted(at + 11_000)])
  })
})

t.test('stop', async t => {
  t.test('ends a timer: stopped, ended now, no `to`; the zone waits', async t => {
    spec(t).given(inTimer).when(stop(at + 4_000)).then([ended('timer_mode', at, at + 4_000, 'stopped')])
    t.match(registeredState([...inTimer, ended('timer_mode', at, at + 4_000, 'stopped')]),
      { mode: 'wait_mode', since: null, to: null, changed_at: at + 4_000 })
  })
  t.test('ends manual the same way', async t => {
    spec(t).given(inManual).when(stop(at + 60_000)).then([ended('manual_mode', at, at + 60_000, 'stopped')])
    t.match(registeredState([...inManual, ended('manual_mode', at, at + 60_000, 'stopped')]), { mode: 'wait_mode', since: null, to: null })
  })
  t.test('in wait is ignored', async t => {
    spec(t).given([registered]).when(stop()).then([ignored('stop', 'already_waiting')])
    spec(t).given([...inManual, ended('manual_mode', at, at + 1_000, 'stopped')]).when(stop(at + 2_000)).then([ignored('stop', 'already_waiting')])
  })
})

t.test('a timer that runs out', async t => {
  t.test('at its due time ends with its due time as `to` and ended_at: completed', async t => {
    const due = at + 10_000
    spec(t).given(inTimer).when(complete(due)).then([ended('timer_mode', at, due, 'completed', due)])
    t.match(registeredState([...inTimer, ended('timer_mode', at, due, 'completed', due)]), { mode: 'wait_mode', since: null, to: null, changed_at: due })
  })
  t.test('of an explicit duration completes at its own due time', async t => {
    const due = at + 30_000
    spec(t).given([registered, timerStarted(at, 30)]).when(complete(due)).then([ended('timer_mode', at, due, 'completed', due)])
    spec(t).given([registered, timerStarted(at, 30)]).when(complete(at + 10_000)).then([]) // the zone default is not its due time
  })
  t.test('a stale timer does nothing', async t => {
    // another timer's due time
    spec(t).given(inTimer).when(complete(at + 9_000)).then([])
    // stopped before it ran out
    spec(t).given([...inTimer, ended('timer_mode', at, at + 4_000, 'stopped')]).when(complete(at + 10_000)).then([])
    // replaced by manual
    spec(t).given([...inTimer, ended('timer_mode', at, at + 4_000, 'manual_started'), manualStarted(at + 4_000)]).when(complete(at + 10_000)).then([])
    // stopped, and a new timer started: the old one's due time is not the new one's
    spec(t).given([...inTimer, ended('timer_mode', at, at + 4_000, 'stopped'), timerStarted(at + 5_000)]).when(complete(at + 10_000)).then([])
    // already completed
    spec(t).given([...inTimer, ended('timer_mode', at, at + 10_000, 'completed', at + 10_000)]).when(complete(at + 10_000)).then([])
    // never started
    spec(t).given([registered]).when(complete(at)).then([])
  })
})

t.test('a timer past its end that is not recorded as ended yet has run out', async t => {
  const due = at + 10_000
  const completed = ended('timer_mode', at, due, 'completed', due)
  t.test('a new timer starts: the old one completed at its due time', async t => {
    spec(t).given(inTimer).when(timer(due + 50)).then([completed, timerStarted(due + 50)])
  })
  t.test('manual starts from wait: no run is recorded as replaced', async t => {
    spec(t).given(inTimer).when(manual(due)).then([completed, manualStarted(due)])
  })
  t.test('stop finds the zone waiting', async t => {
    spec(t).given(inTimer).when(stop(due + 1)).then([completed, ignored('stop', 'already_waiting')])
  })
  t.test('its own timer then does nothing', async t => {
    spec(t).given([...inTimer, completed, timerStarted(due + 50)]).when(complete(due)).then([])
  })
  t.test('a moment before its end it still runs', async t => {
    spec(t).given(inTimer).when(timer(due - 1)).then([ignored('timer', 'timer_running')])
  })
})

t.test('the valve', async t => {
  t.test('a report is recorded as it is, in any mode', async t => {
    spec(t).given([registered]).when({ type: 'ReportValve', open: false }).then([reported(false)])
    spec(t).given(inManual).when({ type: 'ReportValve', open: true }).then([reported(true)])
    spec(t).given(inTimer).when({ type: 'ReportValve', open: false }).then([reported(false)])
    t.equal(registeredState([...inTimer, reported(true)]).reported_open, true)
  })
  t.test('5 s after a change, a valve that reports otherwise is a mismatch', async t => {
    spec(t).given([...inTimer, reported(false)]).when(check(at)).then([mismatch(true, false)])
    spec(t).given([...inManual, reported(true), ended('manual_mode', at, at + 1_000, 'stopped')]).when(check(at + 1_000)).then([mismatch(false, true)])
  })
  t.test('a valve that never reported is a mismatch too, with reported_open null', async t => {
    spec(t).given(inManual).when(check(at)).then([mismatch(true, null)])
    spec(t).given(inTimer).when(check(at)).then([mismatch(true, null)])
  })
  t.test('a valve that agrees is no mismatch', async t => {
    spec(t).given([...inTimer, reported(true)]).when(check(at)).then([])
    spec(t).given([...inManual, reported(true), ended('manual_mode', at, at + 1_000, 'stopped'), reported(false)]).when(check(at + 1_000)).then([])
  })
  t.test('a check for an older change does nothing', async t => {
    // the mode changed again since: that change has its own 5 s
    spec(t).given([...inTimer, ended('timer_mode', at, at + 2_000, 'stopped')]).when(check(at)).then([])
    spec(t).given([...inTimer, reported(false)]).when(check(at - 1_000)).then([])
  })
  t.test('a mismatch is detected once', async t => {
    spec(t).given([...inTimer, reported(false), mismatch(true, false)]).when(check(at)).then([])
    spec(t).given([...inTimer, mismatch(true, null), reported(false)]).when(check(at)).then([])
  })
})

t.test('evolve', async t => {
  t.test('a mismatch shows until the valve agrees', async t => {
    const mismatched = [...inTimer, reported(false), mismatch(true, false)]
    t.equal(registeredState(mismatched).valve_mismatch, true)
    t.equal(registeredState([...mismatched, reported(false)]).valve_mismatch, true, 'a report that still disagrees keeps it')
    t.match(registeredState([...mismatched, reported(true)]), { valve_mismatch: false, reported_open: true }, 'an agreeing report clears it')
  })
  t.test('a mode change the valve already agrees with clears it: the next change gets a new 5 s', async t => {
    t.match(registeredState([...inTimer, reported(false), mismatch(true, false), ended('timer_mode', at, at + 6_000, 'stopped')]),
      { valve_mismatch: false, mode: 'wait_mode', changed_at: at + 6_000 }, 'stuck closed, then stopped: they agree')
    t.match(registeredState([...inManual, reported(false), mismatch(true, false), ended('manual_mode', at, at + 6_000, 'stopped'), timerStarted(at + 7_000)]),
      { valve_mismatch: false, mode: 'timer_mode', changed_at: at + 7_000, reported_open: false })
  })
  t.test('a mode change the valve still disagrees with keeps it', async t => {
    const silent = [...inTimer, mismatch(true, null)]
    t.match(registeredState([...silent, ended('timer_mode', at, at + 6_000, 'stopped')]), { valve_mismatch: true, mode: 'wait_mode' },
      'a valve that never reported agrees with nothing')
    t.match(registeredState([...silent, ended('timer_mode', at, at + 6_000, 'manual_started'), manualStarted(at + 6_000)]),
      { valve_mismatch: true, mode: 'manual_mode', changed_at: at + 6_000 })
    t.match(registeredState([...inManual, reported(true), ended('manual_mode', at, at + 1_000, 'stopped'), mismatch(false, true), timerStarted(at + 2_000)]),
      { valve_mismatch: false, mode: 'timer_mode' }, 'stuck open, then a timer: they agree again')
  })
  t.test('an ignored command changes nothing', async t => {
    const state = registeredState(inTimer)
    t.strictSame(evolveZone(state, ignored('timer', 'timer_running')), state)
  })
})
