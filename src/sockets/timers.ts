import type { FastifyBaseLogger } from 'fastify'
import type { Clock, Timer } from '../clock.ts'
import type { EventStore } from '../store/event-store.ts'
import type { PlugControl } from './plug-control.ts'
import type { SocketQueries } from './projections.ts'

/** Readings while an instance runs come from STATUS 10 this often (TelePeriod is 300 s). */
export const ENERGY_POLL_MS = 5000

interface TimerOptions {
  store: EventStore
  clock: Clock
  sockets: SocketQueries
  control: PlugControl
  log: FastifyBaseLogger
}

/**
 * Every timer of the sockets: instance stops (duration, timeout), waits, and the energy polls
 * while instances run. Each is a due time in the log; they are scheduled from committed events,
 * and from the projections at start, so one that fell due while the service was down fires at once.
 */
export function startSocketTimers ({ store, clock, sockets, control, log }: TimerOptions): () => void {
  const timers = new Map<string, Timer>()
  const polls = new Map<string, Timer>()
  const failed = (what: string) => (error: unknown) => log.warn({ err: error }, `${what} failed`)

  function at (key: string, dueAt: string, fire: () => Promise<unknown>) {
    timers.get(key)?.cancel()
    timers.set(key, clock.setTimeout(() => { timers.delete(key); void fire() }, Date.parse(dueAt) - clock.now()))
  }
  const cancel = (key: string) => { timers.get(key)?.cancel(); timers.delete(key) }

  function scheduleStop (socketId: string, instanceId: string, dueAt: string, reason: 'duration' | 'timeout') {
    at(instanceId, dueAt, () => {
      const socket = sockets.socket(socketId)
      if (socket === undefined) return Promise.resolve()
      return control.stopInstance(socket, instanceId, reason).catch(failed(`the ${reason} stop of instance ${instanceId}`))
    })
  }
  const reasonOf = (startedAt: string, durationSeconds: number | null, dueAt: string) =>
    durationSeconds !== null && Date.parse(startedAt) + durationSeconds * 1000 === Date.parse(dueAt) ? 'duration' : 'timeout'

  function poll (socketId: string) {
    const socket = sockets.socket(socketId)
    const state = socket === undefined ? undefined : sockets.state(socket)
    const running = state?.status === 'registered' && state.running.length > 0
    if (running && !polls.has(socketId)) {
      polls.set(socketId, clock.setInterval(() => { control.query(socketId, 'STATUS', '10').catch(failed('an energy poll')) }, ENERGY_POLL_MS))
    } else if (!running) {
      polls.get(socketId)?.cancel()
      polls.delete(socketId)
    }
  }

  for (const instance of sockets.runningInstances()) {
    if (instance.stop_due_at !== null) scheduleStop(instance.socket_id, instance.instance_id, instance.stop_due_at, reasonOf(instance.started_at, instance.duration_seconds, instance.stop_due_at))
    poll(instance.socket_id)
  }
  for (const wait of sockets.pendingWaits()) at(wait.wait_id, wait.due_at, () => control.endWait(wait.socket_id, wait.wait_id).catch(failed('a wait')))

  const unsubscribe = store.subscribe(events => {
    const read = new Set<string>()
    for (const event of events) {
      switch (event.type) {
        case 'InstanceStarted': {
          const { socket_identifier: socketId, instance_identifier: id, stop_due_at, started_at, duration_seconds } = event.data
          if (stop_due_at !== null) scheduleStop(socketId, id, stop_due_at, reasonOf(started_at, duration_seconds, stop_due_at))
          poll(socketId)
          read.add(socketId)
          break
        }
        case 'InstanceStopped':
        case 'InstanceStartFailed':
          cancel(event.data.instance_identifier)
          poll(event.data.socket_identifier)
          if (event.type === 'InstanceStopped') read.add(event.data.socket_identifier)
          break
        case 'WaitStarted': {
          const { socket_identifier: socketId, wait_identifier: id, due_at } = event.data
          at(id, due_at, () => control.endWait(socketId, id).catch(failed('a wait')))
          break
        }
        case 'WaitEnded':
          cancel(event.data.wait_identifier)
          break
      }
    }
    // An instance's energy is what the plug counted between a reading at its start and one at its stop.
    for (const socketId of read) control.query(socketId, 'STATUS', '10').catch(failed('an energy reading'))
  })

  return () => {
    unsubscribe()
    for (const timer of [...timers.values(), ...polls.values()]) timer.cancel()
  }
}
