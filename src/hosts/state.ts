import type { DeviceStateDeclaration } from '../devices/state-as-of.ts'
import type { RecordedEvent } from '../store/recorded-event.ts'

interface HostFold { name: string | null, system_info: unknown, metrics: unknown }

/** A host as of a moment: its last system info and metrics. */
export const hostState: DeviceStateDeclaration<HostFold> = {
  kind: 'host',
  folds: ['HostRegistered'],
  latest: ['SystemInfoReported', 'MetricsReported'],
  initial: () => ({ name: null, system_info: null, metrics: null }),
  evolve (fold, event: RecordedEvent) {
    switch (event.type) {
      case 'HostRegistered': return { ...fold, name: event.data.name }
      case 'SystemInfoReported': return { ...fold, system_info: event.data.system_info }
      case 'MetricsReported': {
        const { device_identifier: _, ...metrics } = event.data
        return { ...fold, metrics }
      }
      default: return fold
    }
  },
  view: fold => fold.name === null ? null : fold
}
