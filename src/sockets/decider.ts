import type { EventOf } from '../../events/index.ts'
import type { EnergyReading, Power } from '../../events/sockets.ts'
import { InstanceNotFound, NetworkNotFound, SocketNotFound, SocketTopicTaken } from '../errors.ts'

// A smart socket's business rules, the reference's semantics made explicit:
// decide(command, state, context) -> events, evolve(state, event) -> state. Pure: callers load
// the state and the facts it needs, and bring the time in with the command.

type Reported<T> = T & { source: string }
type SocketInfo = Omit<EventOf<'SocketInfoReported'>['data'], 'socket_identifier' | 'source'>
type CallbackAttempt = Omit<EventOf<'CallbackAttempted'>['data'], 'socket_identifier'>

export type SocketCommand =
  | { type: 'RegisterSocket', socket_identifier: string, socket_name: string, topic: string, full_topic: string, network_identifier: string, mqtt_password_sha256: string }
  | { type: 'StartInstance', instance_identifier: string, timeout_ms: number | null, duration_seconds: number | null, callbacks: string[], at: number }
  | { type: 'FailInstanceStart', instance_identifier: string, reason: 'plug_answered_off' | 'no_answer' }
  | { type: 'StopInstance', instance_identifier: string, reason: EventOf<'InstanceStopped'>['data']['reason'], at: number }
  | { type: 'DeleteInstance', instance_identifier: string }
  | { type: 'EmergencyStop', at: number }
  /** Off, asked by a person with no instance running (a plug pressed on, switched off from Home Assistant). */
  | { type: 'SwitchOff' }
  | { type: 'Recover' }
  | { type: 'Query', command: string, payload: string }
  | { type: 'RecordNoAnswer', power: Power, instance_identifier: string | null }
  /** Send the desired power again if the plug has not confirmed it (it reconnected, or time passed). */
  | { type: 'ResendDesired', reason: 'reconnected' | 'unconfirmed' }
  | { type: 'StartWait', wait_identifier: string, duration_seconds: number, callbacks: string[], at: number }
  | { type: 'EndWait', wait_identifier: string }
  | ({ type: 'RecordCallbackAttempt' } & CallbackAttempt)
  // What the plug reports, already parsed from Tasmota's payloads (see mqtt.ts).
  | Reported<{ type: 'ReportPower', power: Power, at: number }>
  | Reported<{ type: 'ReportEnergy', energy: EnergyReading }>
  | Reported<{ type: 'ReportInfo' } & SocketInfo>
  | { type: 'ReportStatus', device_name: string | null }
  | { type: 'ReportAvailability', online: boolean }
  | { type: 'RecordMessage', topic: string, payload: string }
  | { type: 'CommandItself', command: string, payload: string }

interface PendingPower { power: Power, instance_identifier: string | null }

export type SocketState =
  | { status: 'unregistered' }
  | {
    status: 'registered'
    socket_identifier: string
    /** The last power state the plug reported; null until it reports one. */
    power: Power | null
    /** POWER commands sent and not answered yet, in order: Tasmota answers in order. */
    pending: PendingPower[]
    emergency: boolean
    running: string[]
    /**
     * Stock Tasmota reports each change twice: `stat/<topic>/RESULT {"POWER"}` and then
     * `stat/<topic>/POWER`. The value of a RESULT, until its POWER echo has come.
     */
    echo?: Power | null
    /**
     * What the plug should be: the last POWER the service decided, or the last press it
     * accepted; null until either. Absent in states folded before it existed (read as null).
     */
    desired?: Power | null
    /** The instance whose start or stop decided `desired`. */
    desiredBy?: string | null
    /** The plug's own report agrees with `desired` and no command is in flight. */
    agreed?: boolean
  }

type Registered = Extract<SocketState, { status: 'registered' }>

/** Facts from outside the socket's own state that a command needs. */
export interface SocketContext {
  networkAllowed: boolean
  topicTaken: boolean
  /** Of the instance the command names: undefined when it does not exist (or was deleted). */
  instance?: 'running' | 'stopped'
  /** Of the wait the command names. */
  waitPending?: boolean
}

export type SocketEvent = EventOf<'SocketRegistered' | 'SocketCommanded' | 'PowerReported' | 'PowerCommandUnanswered' | 'PowerResent' |
  'EnergyReported' | 'SocketStatusReported' | 'SocketInfoReported' | 'SocketAvailabilityReported' | 'SocketMessageReceived' |
  'InstanceStarted' | 'InstanceStartRefused' | 'InstanceStartFailed' | 'InstanceStopped' | 'InstanceDeleted' |
  'EmergencyStopped' | 'EmergencyRecovered' | 'WaitStarted' | 'WaitEnded' | 'CallbackAttempted'>

export const initialSocketState = (): SocketState => ({ status: 'unregistered' })

const noContext: SocketContext = { networkAllowed: true, topicTaken: false }
const iso = (ms: number) => new Date(ms).toISOString()

/** What the plug will be once the commands in flight are answered. */
export const expectedPower = (state: Registered): Power | null => state.pending.at(-1)?.power ?? state.power

/** Whether the service still has to bring the plug to its desired power. */
export const unconfirmed = (state: SocketState): boolean =>
  state.status === 'registered' && (state.desired ?? null) !== null && state.agreed !== true

export function decideSocket (command: SocketCommand, state: SocketState, context: SocketContext = noContext): SocketEvent[] {
  if (command.type === 'RegisterSocket') {
    if (!context.networkAllowed) throw new NetworkNotFound()
    if (context.topicTaken) throw new SocketTopicTaken()
    const { type: _, ...data } = command
    return [{ type: 'SocketRegistered', data }]
  }
  if (state.status !== 'registered') throw new SocketNotFound()
  const socket_identifier = state.socket_identifier
  const power = (value: Power, instance: string | null): SocketEvent =>
    ({ type: 'SocketCommanded', data: { socket_identifier, command: 'POWER', payload: value, by: 'service', instance_identifier: instance } })
  const stop = (instance: string, reason: EventOf<'InstanceStopped'>['data']['reason'], at: number): SocketEvent =>
    ({ type: 'InstanceStopped', data: { socket_identifier, instance_identifier: instance, reason, stopped_at: iso(at) } })

  switch (command.type) {
    case 'StartInstance': {
      if (state.emergency) return [{ type: 'InstanceStartRefused', data: { socket_identifier, reason: 'emergency_stopped' } }]
      const { instance_identifier, timeout_ms, duration_seconds, callbacks, at } = command
      const dueIn = Math.min(timeout_ms ?? Infinity, (duration_seconds ?? Infinity) * 1000)
      const started: SocketEvent = {
        type: 'InstanceStarted',
        data: { socket_identifier, instance_identifier, timeout_ms, duration_seconds, callbacks, started_at: iso(at), stop_due_at: Number.isFinite(dueIn) ? iso(at + dueIn) : null }
      }
      // reference: the first running instance switches the plug on; later ones share it
      return expectedPower(state) === 'ON' ? [started] : [started, power('ON', instance_identifier)]
    }
    case 'FailInstanceStart':
      if (!state.running.includes(command.instance_identifier)) return []
      return [{ type: 'InstanceStartFailed', data: { socket_identifier, instance_identifier: command.instance_identifier, reason: command.reason } }]
    case 'StopInstance': {
      if (context.instance === undefined) throw new InstanceNotFound()
      const stillRunning = state.running.filter(id => id !== command.instance_identifier)
      const events: SocketEvent[] = context.instance === 'running' ? [stop(command.instance_identifier, command.reason, command.at)] : []
      // reference: the last instance to stop switches the plug off. Stopping a stopped instance
      // again asks once more, so a plug that missed its OFF can be switched off.
      if (stillRunning.length === 0 && expectedPower(state) !== 'OFF') events.push(power('OFF', command.instance_identifier))
      return events
    }
    case 'DeleteInstance':
      if (context.instance === undefined) throw new InstanceNotFound()
      return [{ type: 'InstanceDeleted', data: { socket_identifier, instance_identifier: command.instance_identifier } }]
    case 'EmergencyStop':
      return [
        { type: 'EmergencyStopped', data: { socket_identifier, stopped_instances: state.running } },
        ...state.running.map(id => stop(id, 'emergency', command.at)),
        power('OFF', null)
      ]
    case 'Recover':
      return state.emergency ? [{ type: 'EmergencyRecovered', data: { socket_identifier } }] : []
    case 'Query':
      return [{ type: 'SocketCommanded', data: { socket_identifier, command: command.command, payload: command.payload, by: 'service', instance_identifier: null } }]
    case 'ResendDesired': {
      if (!unconfirmed(state)) return []
      return [{ type: 'PowerResent', data: { socket_identifier, power: state.desired!, reason: command.reason, instance_identifier: state.desiredBy ?? null } }]
    }
    case 'RecordNoAnswer':
      if (!state.pending.some(p => p.power === command.power && p.instance_identifier === command.instance_identifier)) return []
      return [{ type: 'PowerCommandUnanswered', data: { socket_identifier, power: command.power, instance_identifier: command.instance_identifier } }]
    case 'StartWait':
      return [{
        type: 'WaitStarted',
        data: { socket_identifier, wait_identifier: command.wait_identifier, duration_seconds: command.duration_seconds, due_at: iso(command.at + command.duration_seconds * 1000), callbacks: command.callbacks }
      }]
    case 'EndWait':
      return context.waitPending === true ? [{ type: 'WaitEnded', data: { socket_identifier, wait_identifier: command.wait_identifier } }] : []
    case 'SwitchOff':
      // With instances running, it is theirs to switch off (their stops); off already, or on its way there: nothing.
      if (state.running.length > 0 || (expectedPower(state) === 'OFF' && (state.desired ?? 'OFF') === 'OFF')) return []
      return [power('OFF', null)]
    case 'RecordCallbackAttempt': {
      const { type: _, ...data } = command
      return [{ type: 'CallbackAttempted', data: { socket_identifier, ...data } }]
    }
    case 'ReportPower': {
      const isEcho = command.source.startsWith('POWER') && state.echo === command.power
      // Only a command's own answer (RESULT, POWER) answers it: a STATUS asked for at connect
      // while a command is in flight says what the plug is, not what it did.
      const answers = !isEcho && (command.source === 'RESULT' || command.source.startsWith('POWER'))
      const head = answers ? state.pending[0] : undefined
      const desired = state.desired ?? null
      // A change is a press only while the plug was where it should be: right after a reconnect,
      // or after a command it never confirmed, a different report is the plug being wrong.
      const inAgreement = desired === null || state.agreed === true
      const outcome = head !== undefined
        ? (head.power === command.power ? 'confirmed' : 'contradicted')
        // Tasmota sends each change on RESULT and on POWER: only a change counts as a press,
        // and none is inferred while commands are in flight.
        : (!isEcho && inAgreement && state.pending.length === 0 && state.power !== null && state.power !== command.power ? 'pressed' : 'unchanged')
      const events: SocketEvent[] = [{
        type: 'PowerReported',
        data: { socket_identifier, power: command.power, source: command.source, outcome, instance_identifier: head?.instance_identifier ?? null }
      }]
      // reference: switching the plug off by hand stops every running instance
      if (outcome === 'pressed' && command.power === 'OFF') events.push(...state.running.map(id => stop(id, 'pressed', command.at)))
      // Not a press, nothing in flight, and not what it should be: switch it back.
      if (outcome === 'unchanged' && !isEcho && desired !== null && command.power !== desired && state.pending.length === 0) {
        events.push({ type: 'PowerResent', data: { socket_identifier, power: desired, reason: 'contradicted', instance_identifier: state.desiredBy ?? null } })
      }
      return events
    }
    case 'ReportEnergy':
      return [{ type: 'EnergyReported', data: { socket_identifier, source: command.source, energy: command.energy } }]
    case 'ReportInfo': {
      const { type: _, ...data } = command
      return [{ type: 'SocketInfoReported', data: { socket_identifier, ...data } }]
    }
    case 'ReportStatus':
      return [{ type: 'SocketStatusReported', data: { socket_identifier, device_name: command.device_name } }]
    case 'ReportAvailability':
      return [{ type: 'SocketAvailabilityReported', data: { socket_identifier, online: command.online } }]
    case 'RecordMessage':
      return [{ type: 'SocketMessageReceived', data: { socket_identifier, topic: command.topic, payload: command.payload } }]
    case 'CommandItself':
      return [{ type: 'SocketCommanded', data: { socket_identifier, command: command.command, payload: command.payload, by: 'device', instance_identifier: null } }]
    default: {
      const unreachable: never = command
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`)
    }
  }
}

export function evolveSocket (state: SocketState, event: SocketEvent): SocketState {
  if (event.type === 'SocketRegistered') {
    return { status: 'registered', socket_identifier: event.data.socket_identifier, power: null, pending: [], emergency: false, running: [] }
  }
  if (state.status !== 'registered') return state
  switch (event.type) {
    case 'SocketCommanded': {
      if (event.data.by !== 'service' || event.data.command !== 'POWER') return state
      const power = event.data.payload as Power
      return {
        ...state,
        pending: [...state.pending, { power, instance_identifier: event.data.instance_identifier }],
        desired: power,
        desiredBy: event.data.instance_identifier,
        agreed: false
      }
    }
    case 'PowerResent':
      // What was in flight went to a plug that lost it (or never answered): only this one counts.
      return { ...state, pending: [{ power: event.data.power, instance_identifier: event.data.instance_identifier }], agreed: false }
    case 'PowerReported': {
      const pending = event.data.outcome === 'confirmed' || event.data.outcome === 'contradicted' ? state.pending.slice(1) : state.pending
      // A press is accepted as the new wish; otherwise the report agrees with the wish or not.
      const desired = event.data.outcome === 'pressed' ? event.data.power : state.desired ?? null
      return {
        ...state,
        power: event.data.power,
        echo: event.data.source === 'RESULT' ? event.data.power : null,
        pending,
        desired,
        desiredBy: event.data.outcome === 'pressed' ? null : state.desiredBy ?? null,
        agreed: desired !== null && event.data.power === desired && pending.length === 0
      }
    }
    case 'PowerCommandUnanswered': {
      const index = state.pending.findIndex(p => p.power === event.data.power && p.instance_identifier === event.data.instance_identifier)
      return index < 0 ? state : { ...state, pending: state.pending.filter((_, i) => i !== index) }
    }
    case 'InstanceStarted':
      return { ...state, running: [...state.running, event.data.instance_identifier] }
    case 'InstanceStartFailed': {
      // A failed start leaves the plug OFF unless another instance runs: a late ON is then corrected.
      const running = state.running.filter(id => id !== event.data.instance_identifier)
      if (running.length > 0 || state.desired !== 'ON') return { ...state, running }
      // Unanswered, the ON may still have switched it: only a plug that answered OFF is known to agree.
      const agreed = event.data.reason === 'plug_answered_off' && state.power === 'OFF' && state.pending.length === 0
      return { ...state, running, desired: 'OFF', desiredBy: event.data.instance_identifier, agreed }
    }
    case 'InstanceStopped':
      return { ...state, running: state.running.filter(id => id !== event.data.instance_identifier) }
    case 'EmergencyStopped':
      return { ...state, emergency: true }
    case 'EmergencyRecovered':
      return { ...state, emergency: false }
    case 'EnergyReported':
    case 'SocketStatusReported':
    case 'SocketInfoReported':
    case 'SocketAvailabilityReported':
    case 'SocketMessageReceived':
    case 'InstanceStartRefused':
    case 'InstanceDeleted':
    case 'WaitStarted':
    case 'WaitEnded':
    case 'CallbackAttempted':
      return state
    default: {
      const unreachable: never = event
      return unreachable
    }
  }
}
