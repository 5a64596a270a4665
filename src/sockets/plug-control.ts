import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Metadata } from '../../events/index.ts'
import type { Power } from '../../events/sockets.ts'
import type { DeviceBrokerDecorator } from '../broker/plugin.ts'
import type { Clock } from '../clock.ts'
import { EmergencyStopActive, PlugAnsweredOtherwise, PlugDidNotAnswer, PlugDidNotSwitchOff } from '../errors.ts'
import type { EventStore } from '../store/event-store.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { decideSocket, unconfirmed, type SocketCommand, type SocketContext, type SocketEvent } from './decider.ts'
import { commandTopic } from './mqtt.ts'
import type { SocketQueries, SocketRow } from './projections.ts'

export interface PlugControlOptions {
  store: EventStore
  broker: DeviceBrokerDecorator
  clock: Clock
  sockets: SocketQueries
  replyTimeoutMs: number
  /** How often a connected plug that has not confirmed its desired power is sent it again. */
  resendMs: number
  /** Whether the plug is connected now (presence, from the log). */
  connected: (socketId: string) => boolean
  log: FastifyBaseLogger
}

type StopReason = Extract<SocketCommand, { type: 'StopInstance' }>['reason']
const system = (): Metadata => ({ actor: 'system' })

/**
 * Drives plugs: decides a command on the socket's stream, publishes what it asks of the plug
 * once that is committed, and waits for the plug's report to be committed in turn (never
 * polled: the store's commit listener wakes the waiters). Routes and timers both come here.
 */
export function createPlugControl ({ store, broker, clock, sockets, replyTimeoutMs, resendMs, connected, log }: PlugControlOptions) {
  const waiters = new Set<{ match: (event: RecordedEvent) => boolean, resolve: (event: RecordedEvent | undefined) => void }>()
  const unsubscribe = store.subscribe((events, { here }) => {
    for (const event of events) {
      // A desired power sent again, whoever decided it (a reconnect, the steady resend, a report that contradicted it).
      if (event.type === 'PowerResent' && here) publishResend(event.data.socket_identifier, event.data.power)
      for (const waiter of waiters) {
        if (!waiter.match(event)) continue
        waiters.delete(waiter)
        waiter.resolve(event)
      }
    }
  })

  function publishResend (socketId: string, power: Power) {
    const socket = sockets.socket(socketId)
    if (socket === undefined) return
    broker.publish({ topic: commandTopic(socket, 'POWER'), payload: power, qos: 1, retain: false })
      .catch(error => log.error({ err: error, socket: socketId }, 'could not send a plug its desired power'))
  }

  /** Sends a plug its desired power again, if it has not confirmed it (recorded as PowerResent, published after the commit). */
  function resendDesired (socketId: string, reason: 'reconnected' | 'unconfirmed'): Promise<SocketEvent[]> {
    return decide(socketId, { type: 'ResendDesired', reason })
  }

  // Steadily, while a connected plug has not confirmed what it should be: a command it missed, an
  // OFF it answered with ON. Read from the projection each time, so a restart changes nothing.
  // Started by the node that runs the timers (app.timers); returns what stops it.
  function startResends (): () => void {
    const resends = clock.setInterval(() => {
      for (const socket of sockets.all()) {
        if (!unconfirmed(sockets.state(socket)) || !connected(socket.socket_id)) continue
        resendDesired(socket.socket_id, 'unconfirmed').catch(error => log.warn({ err: error, socket: socket.socket_id }, 'could not resend a desired power'))
      }
    }, resendMs)
    return () => resends.cancel()
  }

  /** The next committed event that matches, or undefined after the reply timeout. */
  function nextEvent (match: (event: RecordedEvent) => boolean): Promise<RecordedEvent | undefined> {
    return new Promise(resolve => {
      const timer = clock.setTimeout(() => { waiters.delete(waiter); resolve(undefined) }, replyTimeoutMs)
      const waiter = { match, resolve: (event: RecordedEvent | undefined) => { timer.cancel(); resolve(event) } }
      waiters.add(waiter)
    })
  }

  const streamOf = (socketId: string) => `socket-${socketId}`
  const nextPowerAnswer = (socketId: string, instance: string | null) => nextEvent(event =>
    event.stream_id === streamOf(socketId) && event.type === 'PowerReported' && event.data.instance_identifier === instance &&
    (event.data.outcome === 'confirmed' || event.data.outcome === 'contradicted'))
  const nextEnergy = (socketId: string) => nextEvent(event => event.stream_id === streamOf(socketId) && event.type === 'EnergyReported')

  /** Decide on the socket's current state and append, in one transaction. */
  function decide (socketId: string, command: SocketCommand, context: Partial<SocketContext> = {}, metadata = system()): Promise<SocketEvent[]> {
    return store.handle({
      state: () => {
        const row = sockets.socket(socketId)
        return row === undefined ? { status: 'unregistered' as const } : sockets.state(row)
      },
      decide: (command: SocketCommand, state) => decideSocket(command, state, { networkAllowed: true, topicTaken: false, ...context })
    }, streamOf(socketId), command, metadata)
  }

  /** Publish every command the decision recorded (after its commit: acknowledged means durable). */
  async function send (socket: SocketRow, events: SocketEvent[]): Promise<void> {
    for (const event of events) {
      if (event.type !== 'SocketCommanded') continue
      await broker.publish({ topic: commandTopic(socket, event.data.command), payload: event.data.payload, qos: 1, retain: false })
        .catch(error => log.error({ err: error, socket: socket.socket_id }, 'could not publish a command'))
    }
  }

  const powerCommand = (events: SocketEvent[]) =>
    events.find((e): e is Extract<SocketEvent, { type: 'SocketCommanded' }> => e.type === 'SocketCommanded' && e.data.command === 'POWER')

  /** Wait for the answer to a POWER command; on silence, record that it went unanswered. */
  async function awaitPower (socket: SocketRow, power: Power, instance: string | null, answer: Promise<RecordedEvent | undefined>) {
    const report = await answer
    if (report === undefined) {
      await decide(socket.socket_id, { type: 'RecordNoAnswer', power, instance_identifier: instance })
      return 'no_answer' as const
    }
    return report.type === 'PowerReported' && report.data.outcome === 'confirmed' ? 'confirmed' as const : 'contradicted' as const
  }

  return {
    async startInstance (socket: SocketRow, options: { timeoutMs: number | null, durationSeconds: number | null, callbacks: string[], metadata: Metadata }): Promise<string> {
      const instanceId = randomUUID()
      const events = await decide(socket.socket_id, {
        type: 'StartInstance', instance_identifier: instanceId, timeout_ms: options.timeoutMs, duration_seconds: options.durationSeconds,
        callbacks: options.callbacks, at: clock.now()
      }, {}, options.metadata)
      if (events.some(e => e.type === 'InstanceStartRefused')) throw new EmergencyStopActive()
      const energy = nextEnergy(socket.socket_id)
      // The plug is switched on by this instance's command, or by one still in flight.
      const command = powerCommand(events)
      const row = sockets.socket(socket.socket_id)!
      const state = sockets.state(row)
      const inFlight = state.status === 'registered' ? [...state.pending].reverse().find(p => p.power === 'ON') : undefined
      const switchedBy = command?.data.instance_identifier ?? inFlight?.instance_identifier
      if (command !== undefined || inFlight !== undefined) {
        const answer = nextPowerAnswer(socket.socket_id, switchedBy ?? null)
        await send(socket, events)
        const outcome = await awaitPower(socket, 'ON', switchedBy ?? null, answer)
        if (outcome !== 'confirmed') {
          await decide(socket.socket_id, { type: 'FailInstanceStart', instance_identifier: instanceId, reason: outcome === 'no_answer' ? 'no_answer' : 'plug_answered_off' })
          if (outcome === 'no_answer') throw new PlugDidNotAnswer('ON', replyTimeoutMs)
          throw new PlugAnsweredOtherwise('OFF', 'ON')
        }
      }
      await energy
      return instanceId
    },

    /** Stops a running instance (or asks the plug once more to switch off, if it is the last). */
    async stopInstance (socket: SocketRow, instanceId: string, reason: StopReason, metadata = system()): Promise<void> {
      const instance = sockets.instance(socket.socket_id, instanceId)
      const events = await decide(socket.socket_id, { type: 'StopInstance', instance_identifier: instanceId, reason, at: clock.now() },
        { instance: instance === undefined ? undefined : instance.status === 'running' ? 'running' : 'stopped' }, metadata)
      const command = powerCommand(events)
      const energy = events.some(e => e.type === 'InstanceStopped') ? nextEnergy(socket.socket_id) : undefined
      if (command !== undefined) {
        const answer = nextPowerAnswer(socket.socket_id, command.data.instance_identifier)
        await send(socket, events)
        const outcome = await awaitPower(socket, 'OFF', command.data.instance_identifier, answer)
        if (outcome === 'no_answer') throw new PlugDidNotAnswer('OFF', replyTimeoutMs)
        if (outcome === 'contradicted') throw new PlugDidNotSwitchOff()
      }
      await energy
    },

    /** Deletes a stopped instance (the route stops it first). */
    async deleteInstance (socket: SocketRow, instanceId: string, metadata: Metadata): Promise<void> {
      const instance = sockets.instance(socket.socket_id, instanceId)
      await decide(socket.socket_id, { type: 'DeleteInstance', instance_identifier: instanceId }, { instance: instance === undefined ? undefined : 'stopped' }, metadata)
    },

    async emergencyStop (socket: SocketRow, metadata: Metadata): Promise<string[]> {
      const events = await decide(socket.socket_id, { type: 'EmergencyStop', at: clock.now() }, {}, metadata)
      const stopped = events.find(e => e.type === 'EmergencyStopped')?.data.stopped_instances ?? []
      const answer = nextPowerAnswer(socket.socket_id, null)
      await send(socket, events)
      const outcome = await awaitPower(socket, 'OFF', null, answer)
      if (outcome === 'no_answer') throw new PlugDidNotAnswer('OFF', replyTimeoutMs)
      if (outcome === 'contradicted') throw new PlugAnsweredOtherwise('ON', 'OFF')
      return stopped
    },

    /** Off with no instance running: the plug was switched on by hand. Resolves once it confirms (or did not need to). */
    async switchOff (socket: SocketRow, metadata: Metadata): Promise<void> {
      const events = await decide(socket.socket_id, { type: 'SwitchOff' }, {}, metadata)
      if (powerCommand(events) === undefined) return
      const answer = nextPowerAnswer(socket.socket_id, null)
      await send(socket, events)
      const outcome = await awaitPower(socket, 'OFF', null, answer)
      if (outcome === 'no_answer') throw new PlugDidNotAnswer('OFF', replyTimeoutMs)
      if (outcome === 'contradicted') throw new PlugDidNotSwitchOff()
    },

    async recover (socket: SocketRow, metadata: Metadata): Promise<boolean> {
      const events = await decide(socket.socket_id, { type: 'Recover' }, {}, metadata)
      return events.length > 0
    },

    async startWait (socket: SocketRow, durationSeconds: number, callbacks: string[], metadata: Metadata): Promise<void> {
      await decide(socket.socket_id, { type: 'StartWait', wait_identifier: randomUUID(), duration_seconds: durationSeconds, callbacks, at: clock.now() }, {}, metadata)
    },

    async endWait (socketId: string, waitId: string): Promise<void> {
      await decide(socketId, { type: 'EndWait', wait_identifier: waitId }, { waitPending: sockets.waitPending(waitId) })
    },

    resendDesired,

    /** Ask the plug something (STATUS 10, STATUS 0); its answer arrives as a report. */
    async query (socketId: string, command: string, payload: string): Promise<void> {
      const socket = sockets.socket(socketId)
      if (socket === undefined) return
      await send(socket, await decide(socketId, { type: 'Query', command, payload }))
    },

    recordCallbackAttempt (socketId: string, attempt: Omit<Extract<SocketCommand, { type: 'RecordCallbackAttempt' }>, 'type'>) {
      return decide(socketId, { type: 'RecordCallbackAttempt', ...attempt })
    },

    startResends,

    close () {
      unsubscribe()
      for (const waiter of waiters) waiter.resolve(undefined)
      waiters.clear()
    }
  }
}
export type PlugControl = ReturnType<typeof createPlugControl>
