import t, { type Test } from 'tap'
import type { Power } from '../events/sockets.ts'
import {
  decideSocket, evolveSocket, expectedPower, initialSocketState,
  type SocketCommand, type SocketContext, type SocketEvent, type SocketState
} from '../src/sockets/decider.ts'
import { InstanceNotFound, NetworkNotFound, SocketNotFound, SocketTopicTaken } from '../src/errors.ts'
import { deciderSpec } from './helpers/decider-spec.ts'

// The smart socket's rules (a Tasmota plug shared by instances), given/when/then on the decider.

type Assert = Pick<Test, 'same' | 'throws'>
const facts: SocketContext = { networkAllowed: true, topicTaken: false }
/** The decider with the facts a command needs from outside the socket's stream. */
const spec = (t: Assert, context: Partial<SocketContext> = {}) =>
  deciderSpec({ decide: (c: SocketCommand, s: SocketState) => decideSocket(c, s, { ...facts, ...context }), evolve: evolveSocket, initialState: initialSocketState })(t)

const socket_identifier = '3b0f2d1e-8a5c-4e8b-9d51-2f7c6a0e4b12'
const network_identifier = '0a71a8d8-40c6-4086-a64e-58e38350cb53'
const a = 'instance-a'
const b = 'instance-b'
const c = 'instance-c'
const at = Date.UTC(2026, 0, 1, 8)
const iso = (ms: number) => new Date(ms).toISOString()

const registration = { socket_identifier, socket_name: 'kettle', topic: 'kettle_1', full_topic: '%prefix%/%topic%/', network_identifier, mqtt_password_sha256: 'x' }
const registered: SocketEvent = { type: 'SocketRegistered', data: registration }
const commanded = (payload: Power, instance: string | null): SocketEvent =>
  ({ type: 'SocketCommanded', data: { socket_identifier, command: 'POWER', payload, by: 'service', instance_identifier: instance } })
const reported = (power: Power, outcome: 'confirmed' | 'contradicted' | 'pressed' | 'unchanged', instance: string | null = null, source = 'POWER'): SocketEvent =>
  ({ type: 'PowerReported', data: { socket_identifier, power, source, outcome, instance_identifier: instance } })
const resent = (power: Power, reason: 'reconnected' | 'unconfirmed' | 'contradicted', instance: string | null): SocketEvent =>
  ({ type: 'PowerResent', data: { socket_identifier, power, reason, instance_identifier: instance } })
const started = (instance: string, due: { timeout_ms?: number, duration_seconds?: number, stop_due_at?: string } = {}): SocketEvent => ({
  type: 'InstanceStarted',
  data: {
    socket_identifier, instance_identifier: instance, timeout_ms: due.timeout_ms ?? null, duration_seconds: due.duration_seconds ?? null,
    callbacks: [], started_at: iso(at), stop_due_at: due.stop_due_at ?? null
  }
})
const stopped = (instance: string, reason: 'requested' | 'emergency' | 'pressed' | 'timeout' | 'duration' = 'requested', when = at): SocketEvent =>
  ({ type: 'InstanceStopped', data: { socket_identifier, instance_identifier: instance, reason, stopped_at: iso(when) } })
const emergencyStopped = (instances: string[]): SocketEvent => ({ type: 'EmergencyStopped', data: { socket_identifier, stopped_instances: instances } })

const start = (instance: string, due: { timeout_ms?: number, duration_seconds?: number } = {}): SocketCommand =>
  ({ type: 'StartInstance', instance_identifier: instance, timeout_ms: due.timeout_ms ?? null, duration_seconds: due.duration_seconds ?? null, callbacks: [], at })
const stop = (instance: string): SocketCommand => ({ type: 'StopInstance', instance_identifier: instance, reason: 'requested', at })
const report = (power: Power, source = 'POWER', when = at): SocketCommand => ({ type: 'ReportPower', power, source, at: when })

/** Histories, as the log holds them. */
const plugOff = [registered, reported('OFF', 'unchanged')]
/** `a` started and the plug confirmed it is on. */
const aRunning = [registered, started(a), commanded('ON', a), reported('ON', 'confirmed', a)]
/** `a` and `b` share the plug, which is on. */
const abRunning = [...aRunning, started(b)]
/** `a` stopped, its OFF went unanswered: nothing runs and the plug is still on. */
const aStoppedPlugOn = [...aRunning, stopped(a), commanded('OFF', a), { type: 'PowerCommandUnanswered', data: { socket_identifier, power: 'OFF', instance_identifier: a } } satisfies SocketEvent]

t.test('registration', async t => {
  t.test('records the socket', async t => {
    spec(t).given([]).when({ type: 'RegisterSocket', ...registration }).then([registered])
  })
  t.test('refuses a network the user is not a member of', async t => {
    spec(t, { networkAllowed: false }).given([]).when({ type: 'RegisterSocket', ...registration }).thenThrows(NetworkNotFound)
  })
  t.test('refuses a topic another socket or device uses', async t => {
    spec(t, { topicTaken: true }).given([]).when({ type: 'RegisterSocket', ...registration }).thenThrows(SocketTopicTaken)
  })
})

t.test('every other command needs a registered socket', async t => {
  const commands: SocketCommand[] = [
    start(a), stop(a), report('ON'), { type: 'EmergencyStop', at }, { type: 'Recover' },
    { type: 'RecordNoAnswer', power: 'ON', instance_identifier: a }, { type: 'FailInstanceStart', instance_identifier: a, reason: 'no_answer' },
    { type: 'EndWait', wait_identifier: 'w' }
  ]
  for (const command of commands) spec(t, { instance: 'running', waitPending: true }).given([]).when(command).thenThrows(SocketNotFound)
})

t.test('starting an instance', async t => {
  t.test('on a plug whose power is unknown switches it on, for that instance', async t => {
    spec(t).given([registered]).when(start(a)).then([started(a), commanded('ON', a)])
  })
  t.test('on a plug that is off switches it on', async t => {
    spec(t).given(plugOff).when(start(a)).then([started(a), commanded('ON', a)])
  })
  t.test('while the last instance is switching the plug off switches it on again', async t => {
    spec(t).given([...aRunning, stopped(a), commanded('OFF', a)]).when(start(b)).then([started(b), commanded('ON', b)])
  })
  t.test('while another instance runs shares the plug', async t => {
    spec(t).given(aRunning).when(start(b)).then([started(b)])
  })
  t.test('while another instance\'s ON is still unanswered shares the plug', async t => {
    spec(t).given([registered, started(a), commanded('ON', a)]).when(start(b)).then([started(b)])
  })
  t.test('is refused while the socket is emergency-stopped', async t => {
    spec(t).given([...aRunning, emergencyStopped([a]), stopped(a, 'emergency'), commanded('OFF', null), reported('OFF', 'confirmed')])
      .when(start(b)).then([{ type: 'InstanceStartRefused', data: { socket_identifier, reason: 'emergency_stopped' } }])
  })
  t.test('stops by itself at the earlier of timeout and duration', async t => {
    const due = (command: SocketCommand) => {
      const [event] = decideSocket(command, [registered].reduce(evolveSocket, initialSocketState()))
      return event?.type === 'InstanceStarted' ? event.data.stop_due_at : 'no InstanceStarted'
    }
    t.equal(due(start(a, { timeout_ms: 90_000, duration_seconds: 60 })), iso(at + 60_000), 'the duration is earlier')
    t.equal(due(start(a, { timeout_ms: 30_000, duration_seconds: 60 })), iso(at + 30_000), 'the timeout is earlier')
    t.equal(due(start(a, { timeout_ms: 1_500 })), iso(at + 1_500), 'a timeout alone, in ms')
    t.equal(due(start(a, { duration_seconds: 2 })), iso(at + 2_000), 'a duration alone, in seconds')
    t.strictSame(due(start(a)), null, 'neither: never')
    spec(t).given([registered]).when(start(a, { timeout_ms: 30_000, duration_seconds: 60 }))
      .then([started(a, { timeout_ms: 30_000, duration_seconds: 60, stop_due_at: '2026-01-01T08:00:30.000Z' }), commanded('ON', a)])
  })
})

t.test('stopping an instance', async t => {
  t.test('the last one running switches the plug off', async t => {
    spec(t, { instance: 'running' }).given(aRunning).when(stop(a)).then([stopped(a), commanded('OFF', a)])
  })
  t.test('the last one, before the plug answered its ON, switches it off too', async t => {
    spec(t, { instance: 'running' }).given([...plugOff, started(a), commanded('ON', a)]).when(stop(a)).then([stopped(a), commanded('OFF', a)])
  })
  t.test('one of several leaves the plug on', async t => {
    spec(t, { instance: 'running' }).given(abRunning).when(stop(a)).then([stopped(a)])
  })
  t.test('one stopped already, while nothing runs and the plug is on, asks the plug again', async t => {
    spec(t, { instance: 'stopped' }).given(aStoppedPlugOn).when(stop(a)).then([commanded('OFF', a)])
  })
  t.test('one stopped already, while the plug is off, does nothing', async t => {
    spec(t, { instance: 'stopped' }).given([...aRunning, stopped(a), commanded('OFF', a), reported('OFF', 'confirmed', a)]).when(stop(a)).then([])
  })
  t.test('one stopped already, while its OFF is in flight, does nothing', async t => {
    spec(t, { instance: 'stopped' }).given([...aRunning, stopped(a), commanded('OFF', a)]).when(stop(a)).then([])
  })
  t.test('one stopped already, while another runs, does nothing', async t => {
    spec(t, { instance: 'stopped' }).given([...abRunning, stopped(a)]).when(stop(a)).then([])
  })
  t.test('an instance that does not exist is not found', async t => {
    spec(t).given(aRunning).when(stop(b)).thenThrows(InstanceNotFound)
  })
})

t.test('what the plug reports', async t => {
  t.test('the awaited state confirms the pending command, which is then answered', async t => {
    const pending = [registered, started(a), commanded('ON', a)]
    spec(t).given(pending).when(report('ON', 'RESULT')).then([reported('ON', 'confirmed', a, 'RESULT')])
    // Tasmota says it on RESULT and on POWER: the second counts for nothing.
    spec(t).given([...pending, reported('ON', 'confirmed', a, 'RESULT')]).when(report('ON')).then([reported('ON', 'unchanged')])
  })
  t.test('the other state contradicts the pending command, which is then answered', async t => {
    const pending = [registered, started(a), commanded('ON', a)]
    spec(t).given(pending).when(report('OFF')).then([reported('OFF', 'contradicted', a)])
    // a still runs (its start is failed next, by whoever awaits the answer): the plug should be on
    spec(t).given([...pending, reported('OFF', 'contradicted', a)]).when(report('OFF')).then([reported('OFF', 'unchanged'), resent('ON', 'contradicted', a)])
  })
  t.test('a change nobody asked for is a press of the plug\'s button, counted once', async t => {
    spec(t).given(plugOff).when(report('ON', 'RESULT')).then([reported('ON', 'pressed', null, 'RESULT')])
    spec(t).given([...plugOff, reported('ON', 'pressed', null, 'RESULT')]).when(report('ON')).then([reported('ON', 'unchanged')])
  })
  t.test('the state it already had is no news', async t => {
    spec(t).given(plugOff).when(report('OFF')).then([reported('OFF', 'unchanged')])
    spec(t).given(aRunning).when(report('ON', 'STATUS0')).then([reported('ON', 'unchanged', null, 'STATUS0')])
  })
  t.test('a first report, with no command pending, is no press', async t => {
    spec(t).given([registered]).when(report('ON')).then([reported('ON', 'unchanged')])
    // a running instance whose ON went unanswered: the plug's first word does not stop it, and it is switched on again
    spec(t).given([registered, started(a), commanded('ON', a), { type: 'PowerCommandUnanswered', data: { socket_identifier, power: 'ON', instance_identifier: a } }])
      .when(report('OFF')).then([reported('OFF', 'unchanged'), resent('ON', 'contradicted', a)])
  })
  t.test('switching the plug off by hand stops every running instance, at the time of the report', async t => {
    const when = at + 5_000
    spec(t).given(abRunning).when(report('OFF', 'RESULT', when))
      .then([reported('OFF', 'pressed', null, 'RESULT'), stopped(a, 'pressed', when), stopped(b, 'pressed', when)])
  })
  t.test('switching it on by hand stops nothing', async t => {
    spec(t).given(plugOff).when(report('ON', 'RESULT')).then([reported('ON', 'pressed', null, 'RESULT')])
    // a is still running: the plug answered its ON with OFF, and the start has not been failed yet;
    // switched on now, it is where it should be (no press, nothing to correct)
    spec(t).given([...plugOff, started(a), commanded('ON', a), reported('OFF', 'contradicted', a)]).when(report('ON'))
      .then([reported('ON', 'unchanged')])
  })
  t.test('pending commands are answered in the order they were sent', async t => {
    // a stops before the plug answered its ON; b starts while a's OFF is in flight
    const history = [registered, started(a), commanded('ON', a), stopped(a), commanded('OFF', a), started(b), commanded('ON', b)]
    spec(t).given(history).when(report('ON')).then([reported('ON', 'confirmed', a)])
    const first = [...history, reported('ON', 'confirmed', a)]
    spec(t).given(first).when(report('OFF')).then([reported('OFF', 'confirmed', a)])
    const second = [...first, reported('OFF', 'confirmed', a)]
    spec(t).given(second).when(report('ON')).then([reported('ON', 'confirmed', b)])
    spec(t).given([...second, reported('ON', 'confirmed', b)]).when(report('ON')).then([reported('ON', 'unchanged')])
  })
  t.test('stock firmware\'s POWER echo of a RESULT is no news, and answers nothing', async t => {
    // a stops, b starts before the plug answered the OFF: Tasmota answers each on RESULT, then on POWER
    const history = [...aRunning, stopped(a), commanded('OFF', a), started(b), commanded('ON', b)]
    spec(t).given(history).when(report('OFF', 'RESULT')).then([reported('OFF', 'confirmed', a, 'RESULT')])
    const answered = [...history, reported('OFF', 'confirmed', a, 'RESULT')]
    spec(t).given(answered).when(report('OFF', 'POWER')).then([reported('OFF', 'unchanged', null, 'POWER')])
    spec(t).given(answered).when(report('OFF', 'POWER1')).then([reported('OFF', 'unchanged', null, 'POWER1')])
    const echoed = [...answered, reported('OFF', 'unchanged', null, 'POWER')]
    spec(t).given(echoed).when(report('ON', 'RESULT')).then([reported('ON', 'confirmed', b, 'RESULT')])
    // the echo comes once: a second POWER OFF is the plug's answer to b's ON
    spec(t).given(echoed).when(report('OFF', 'POWER')).then([reported('OFF', 'contradicted', b, 'POWER')])
  })
  t.test('only a RESULT has an echo: firmware that reports on POWER alone answers each command there', async t => {
    const history = [...aRunning, stopped(a), commanded('OFF', a), started(b), commanded('ON', b), reported('OFF', 'confirmed', a, 'POWER')]
    spec(t).given(history).when(report('OFF', 'POWER')).then([reported('OFF', 'contradicted', b, 'POWER')])
    spec(t).given([...history.slice(0, -1), reported('OFF', 'confirmed', a, 'STATUS0')]).when(report('OFF', 'POWER'))
      .then([reported('OFF', 'contradicted', b, 'POWER')])
  })
  t.test('a RESULT\'s echo is a POWER of the same value', async t => {
    const history = [...aRunning, stopped(a), commanded('OFF', a), started(b), commanded('ON', b), reported('OFF', 'confirmed', a, 'RESULT')]
    spec(t).given(history).when(report('ON', 'POWER')).then([reported('ON', 'confirmed', b, 'POWER')])
    // a STATUS says what the plug is, not what it did: it answers no command, and infers no press
    // while one is in flight
    spec(t).given(history).when(report('OFF', 'STATUS0')).then([reported('OFF', 'unchanged', null, 'STATUS0')])
    spec(t).given(history).when(report('ON', 'STATUS0')).then([reported('ON', 'unchanged', null, 'STATUS0')])
  })
})

t.test('a command that got no answer', async t => {
  t.test('is recorded, and is no longer pending', async t => {
    const pending = [registered, started(a), commanded('ON', a)]
    const unanswered: SocketEvent = { type: 'PowerCommandUnanswered', data: { socket_identifier, power: 'ON', instance_identifier: a } }
    spec(t).given(pending).when({ type: 'RecordNoAnswer', power: 'ON', instance_identifier: a }).then([unanswered])
    spec(t).given([...pending, unanswered]).when({ type: 'RecordNoAnswer', power: 'ON', instance_identifier: a }).then([])
    spec(t).given([...pending, unanswered]).when(report('ON')).then([reported('ON', 'unchanged')])
  })
  t.test('only if such a command is pending', async t => {
    const pending = [registered, started(a), commanded('ON', a)]
    spec(t).given(pending).when({ type: 'RecordNoAnswer', power: 'OFF', instance_identifier: a }).then([])
    spec(t).given(pending).when({ type: 'RecordNoAnswer', power: 'ON', instance_identifier: b }).then([])
    spec(t).given(pending).when({ type: 'RecordNoAnswer', power: 'ON', instance_identifier: null }).then([])
    spec(t).given([...pending, reported('ON', 'confirmed', a)]).when({ type: 'RecordNoAnswer', power: 'ON', instance_identifier: a }).then([])
  })
  t.test('takes out that command, not the first pending', async t => {
    const history = [registered, started(a), commanded('ON', a), stopped(a), commanded('OFF', a),
      { type: 'PowerCommandUnanswered', data: { socket_identifier, power: 'OFF', instance_identifier: a } } satisfies SocketEvent]
    spec(t).given(history).when(report('ON')).then([reported('ON', 'confirmed', a)])
    // OFF is what the plug should be (the last decision): reaching it is no press
    spec(t).given([...history, reported('ON', 'confirmed', a)]).when(report('OFF')).then([reported('OFF', 'unchanged')])
  })
})

t.test('desired power, sent again until the plug confirms it', async t => {
  const resend = (reason: 'reconnected' | 'unconfirmed'): SocketCommand => ({ type: 'ResendDesired', reason })
  const startFailed = (reason: 'no_answer' | 'plug_answered_off'): SocketEvent =>
    ({ type: 'InstanceStartFailed', data: { socket_identifier, instance_identifier: a, reason } })
  t.test('an OFF the plug never answered is sent again when it reconnects, and at each interval', async t => {
    spec(t).given(aStoppedPlugOn).when(resend('reconnected')).then([resent('OFF', 'reconnected', a)])
    spec(t).given(aStoppedPlugOn).when(resend('unconfirmed')).then([resent('OFF', 'unconfirmed', a)])
  })
  t.test('a plug that agrees, or that nothing was asked of, is sent nothing', async t => {
    spec(t).given(aRunning).when(resend('reconnected')).then([])
    spec(t).given(plugOff).when(resend('reconnected')).then([])
    spec(t).given([...aStoppedPlugOn, resent('OFF', 'reconnected', a), reported('OFF', 'confirmed', a, 'RESULT')]).when(resend('unconfirmed')).then([])
  })
  t.test('a report contradicting what the plug should be, after a reconnect, is switched back, not a press', async t => {
    spec(t).given(aStoppedPlugOn).when(report('ON', 'STATUS0')).then([reported('ON', 'unchanged', null, 'STATUS0'), resent('OFF', 'contradicted', a)])
  })
  t.test('a late ON after a start that got no answer is switched back off', async t => {
    const failed = [registered, reported('OFF', 'unchanged'), started(a), commanded('ON', a),
      { type: 'PowerCommandUnanswered', data: { socket_identifier, power: 'ON', instance_identifier: a } } satisfies SocketEvent, startFailed('no_answer')]
    spec(t).given(failed).when(report('ON', 'RESULT')).then([reported('ON', 'unchanged', null, 'RESULT'), resent('OFF', 'contradicted', a)])
  })
  t.test('a start the plug answered with OFF leaves it agreeing: nothing to correct', async t => {
    const failed = [...plugOff, started(a), commanded('ON', a), reported('OFF', 'contradicted', a), startFailed('plug_answered_off')]
    spec(t).given(failed).when(resend('reconnected')).then([])
  })
})

t.test('an emergency stop', async t => {
  t.test('stops every running instance and switches the plug off', async t => {
    spec(t).given([...abRunning, started(c), stopped(c)]).when({ type: 'EmergencyStop', at: at + 1_000 })
      .then([emergencyStopped([a, b]), stopped(a, 'emergency', at + 1_000), stopped(b, 'emergency', at + 1_000), commanded('OFF', null)])
  })
  t.test('switches the plug off even when nothing runs', async t => {
    spec(t).given(plugOff).when({ type: 'EmergencyStop', at }).then([emergencyStopped([]), commanded('OFF', null)])
  })
  t.test('is recovered from', async t => {
    const stoppedSocket = [...aRunning, emergencyStopped([a]), stopped(a, 'emergency'), commanded('OFF', null), reported('OFF', 'confirmed')]
    spec(t).given(stoppedSocket).when({ type: 'Recover' }).then([{ type: 'EmergencyRecovered', data: { socket_identifier } }])
    spec(t).given([...stoppedSocket, { type: 'EmergencyRecovered', data: { socket_identifier } }]).when(start(b)).then([started(b), commanded('ON', b)])
  })
  t.test('recovering when not stopped does nothing', async t => {
    spec(t).given(aRunning).when({ type: 'Recover' }).then([])
    spec(t).given([...aRunning, emergencyStopped([a]), stopped(a, 'emergency'), { type: 'EmergencyRecovered', data: { socket_identifier } }])
      .when({ type: 'Recover' }).then([])
  })
})

t.test('a start that failed', async t => {
  const failed: SocketEvent = { type: 'InstanceStartFailed', data: { socket_identifier, instance_identifier: a, reason: 'plug_answered_off' } }
  const contradicted = [registered, started(a), commanded('ON', a), reported('OFF', 'contradicted', a)]
  t.test('is recorded for a running instance', async t => {
    spec(t).given(contradicted).when({ type: 'FailInstanceStart', instance_identifier: a, reason: 'plug_answered_off' }).then([failed])
  })
  t.test('ends it: it is recorded once, and a new start switches the plug on', async t => {
    spec(t).given([...contradicted, failed]).when({ type: 'FailInstanceStart', instance_identifier: a, reason: 'no_answer' }).then([])
    spec(t).given([...contradicted, failed]).when(start(b)).then([started(b), commanded('ON', b)])
  })
  t.test('is nothing for an instance that is not running', async t => {
    spec(t).given([...aRunning, stopped(a)]).when({ type: 'FailInstanceStart', instance_identifier: a, reason: 'no_answer' }).then([])
    spec(t).given(aRunning).when({ type: 'FailInstanceStart', instance_identifier: b, reason: 'no_answer' }).then([])
  })
})

t.test('a wait ends once', async t => {
  const ended: SocketEvent = { type: 'WaitEnded', data: { socket_identifier, wait_identifier: 'w' } }
  spec(t, { waitPending: true }).given([registered]).when({ type: 'EndWait', wait_identifier: 'w' }).then([ended])
  spec(t, { waitPending: false }).given([registered]).when({ type: 'EndWait', wait_identifier: 'w' }).then([])
  spec(t).given([registered]).when({ type: 'EndWait', wait_identifier: 'w' }).then([])
})

t.test('evolve', async t => {
  const state = [...abRunning, stopped(a), commanded('OFF', a)].reduce(evolveSocket, initialSocketState())
  t.test('folds the facts the rules need', async t => {
    if (state.status !== 'registered') throw new Error('not registered')
    const { power, pending, emergency, running } = state
    t.strictSame({ socket_identifier: state.socket_identifier, power, pending, emergency, running },
      { socket_identifier, power: 'ON', pending: [{ power: 'OFF', instance_identifier: a }], emergency: false, running: [b] })
    t.equal(expectedPower(state), 'OFF', 'what the plug will be once answered')
  })
  t.test('keeps every other event as a no-op', async t => {
    const others: SocketEvent[] = [
      { type: 'SocketCommanded', data: { socket_identifier, command: 'STATUS', payload: '10', by: 'service', instance_identifier: null } },
      { type: 'SocketCommanded', data: { socket_identifier, command: 'POWER', payload: '', by: 'device', instance_identifier: null } },
      { type: 'EnergyReported', data: { socket_identifier, source: 'SENSOR', energy: { Power: 12 } } },
      { type: 'SocketStatusReported', data: { socket_identifier, device_name: 'Kettle' } },
      { type: 'SocketInfoReported', data: { socket_identifier, source: 'INFO1', firmware_version: '14.3.0' } },
      { type: 'SocketAvailabilityReported', data: { socket_identifier, online: false } },
      { type: 'SocketMessageReceived', data: { socket_identifier, topic: 'tele/kettle_1/STATE', payload: '{}' } },
      { type: 'InstanceStartRefused', data: { socket_identifier, reason: 'emergency_stopped' } },
      { type: 'InstanceDeleted', data: { socket_identifier, instance_identifier: a } },
      { type: 'WaitStarted', data: { socket_identifier, wait_identifier: 'w', duration_seconds: 5, due_at: iso(at + 5_000), callbacks: [] } },
      { type: 'WaitEnded', data: { socket_identifier, wait_identifier: 'w' } },
      {
        type: 'CallbackAttempted',
        data: { socket_identifier, subject: 'instance', subject_identifier: a, url: 'http://x/', attempt: 1, delivered: true, status: 200, error: null, next_attempt_at: null }
      }
    ]
    for (const event of others) t.strictSame(evolveSocket(state, event), state, event.type)
  })
  t.test('ignores everything before the registration', async t => {
    t.strictSame([started(a), commanded('ON', a), emergencyStopped([])].reduce(evolveSocket, initialSocketState()), { status: 'unregistered' })
  })
})

t.test('switched off with no instance running (Home Assistant, after a press)', async t => {
  const pressedOn = [...plugOff, reported('ON', 'pressed')]
  t.test('a plug pressed on is sent POWER OFF, by nobody\'s instance', async t => {
    spec(t).given(pressedOn).when({ type: 'SwitchOff' }).then([commanded('OFF', null)])
  })
  t.test('a plug already off, or with an OFF in flight, is sent nothing', async t => {
    spec(t).given(plugOff).when({ type: 'SwitchOff' }).then([])
    spec(t).given([...pressedOn, commanded('OFF', null)]).when({ type: 'SwitchOff' }).then([])
  })
  t.test('with instances running, their stops switch it off: nothing here', async t => {
    spec(t).given(aRunning).when({ type: 'SwitchOff' }).then([])
  })
})
