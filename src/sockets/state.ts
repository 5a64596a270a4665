import type { EnergyReading } from '../../events/sockets.ts'
import type { DeviceStateDeclaration } from '../devices/state-as-of.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'
import { evolveSocket, initialSocketState, type SocketEvent, type SocketState } from './decider.ts'

interface SocketFold {
  decider: SocketState
  name: string | null
  /** Running instances: when each started, and the plug's first reading after (its energy's start). */
  instances: Record<string, { started_at: string, energy_start: EnergyReading | null }>
  energy: EnergyReading | null
}

const kwh = (reading: EnergyReading | null) => reading === null ? null : Number(reading.Total)

/** A plug as of a moment: the decider's state (the live projection's evolve), the instances running then and their energy so far. */
export const socketState: DeviceStateDeclaration<SocketFold> = {
  kind: 'socket',
  folds: ['SocketRegistered', 'SocketCommanded', 'PowerReported', 'PowerCommandUnanswered', 'PowerResent', 'EnergyReported',
    'InstanceStarted', 'InstanceStartFailed', 'InstanceStopped', 'EmergencyStopped', 'EmergencyRecovered'],
  latest: [],
  initial: () => ({ decider: initialSocketState(), name: null, instances: {}, energy: null }),
  evolve (fold, recorded: RecordedEvent) {
    const event = recorded as SocketEvent & RecordedEvent
    const decider = evolveSocket(fold.decider, event)
    switch (event.type) {
      case 'SocketRegistered':
        return { ...fold, decider, name: event.data.socket_name }
      case 'InstanceStarted':
        return { ...fold, decider, instances: { ...fold.instances, [event.data.instance_identifier]: { started_at: event.data.started_at, energy_start: null } } }
      case 'InstanceStopped':
      case 'InstanceStartFailed': {
        const { [event.data.instance_identifier]: _, ...instances } = fold.instances
        return { ...fold, decider, instances }
      }
      case 'EnergyReported': {
        const instances = Object.fromEntries(Object.entries(fold.instances).map(([id, i]) => [id, { ...i, energy_start: i.energy_start ?? event.data.energy }]))
        return { ...fold, decider, instances, energy: event.data.energy }
      }
      default:
        return { ...fold, decider }
    }
  },
  view ({ decider, name, instances, energy }) {
    if (decider.status !== 'registered') return null
    const now = kwh(energy)
    return {
      name,
      power: decider.power,
      desired_power: decider.desired ?? null,
      emergency_stopped: decider.emergency,
      running_instances: decider.running.map(id => {
        const start = kwh(instances[id]?.energy_start ?? null)
        return { instance_identifier: id, started_at: instances[id]?.started_at ?? null, energy_kwh: now === null || start === null ? null : Math.round((now - start) * 1000) / 1000 }
      }),
      energy
    }
  }
}
